#include "json.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace qh::explore {

struct JsonParser {
    const std::string &t;
    size_t i = 0;
    [[noreturn]] void fail(const std::string &what) {
        throw std::runtime_error("JSON: " + what + " at offset " + std::to_string(i));
    }
    void ws() {
        while (i < t.size() && (t[i] == ' ' || t[i] == '\n' || t[i] == '\r' || t[i] == '\t')) i++;
    }
    bool lit(const char *s) {
        size_t n = std::char_traits<char>::length(s);
        if (t.compare(i, n, s) == 0) { i += n; return true; }
        return false;
    }
    std::string string() {
        if (t[i] != '"') fail("expected a string");
        i++;
        std::string r;
        while (i < t.size() && t[i] != '"') {
            char c = t[i++];
            if (c == '\\') {
                if (i >= t.size()) fail("bad escape");
                char e = t[i++];
                switch (e) {
                case 'n': r += '\n'; break;
                case 't': r += '\t'; break;
                case 'r': r += '\r'; break;
                case 'b': r += '\b'; break;
                case 'f': r += '\f'; break;
                case 'u': {
                    if (i + 4 > t.size()) fail("bad \\u escape");
                    unsigned cp = std::stoul(t.substr(i, 4), nullptr, 16);
                    i += 4;
                    if (cp < 0x80) r += char(cp);
                    else if (cp < 0x800) { r += char(0xC0 | (cp >> 6)); r += char(0x80 | (cp & 0x3F)); }
                    else { r += char(0xE0 | (cp >> 12)); r += char(0x80 | ((cp >> 6) & 0x3F)); r += char(0x80 | (cp & 0x3F)); }
                    break;
                }
                default: r += e;
                }
            } else {
                r += c;
            }
        }
        if (i >= t.size()) fail("unterminated string");
        i++;
        return r;
    }
    Json value() {
        ws();
        if (i >= t.size()) fail("unexpected end");
        char c = t[i];
        if (c == '{') {
            i++;
            Json o = Json::object();
            ws();
            if (t[i] == '}') { i++; return o; }
            for (;;) {
                ws();
                std::string k = string();
                ws();
                if (t[i] != ':') fail("expected ':'");
                i++;
                o[k] = value();
                ws();
                if (t[i] == ',') { i++; continue; }
                if (t[i] == '}') { i++; return o; }
                fail("expected ',' or '}'");
            }
        }
        if (c == '[') {
            i++;
            Json a = Json::array();
            ws();
            if (t[i] == ']') { i++; return a; }
            for (;;) {
                a.push(value());
                ws();
                if (t[i] == ',') { i++; continue; }
                if (t[i] == ']') { i++; return a; }
                fail("expected ',' or ']'");
            }
        }
        if (c == '"') return Json(string());
        if (lit("true")) return Json(true);
        if (lit("false")) return Json(false);
        if (lit("null")) return Json();
        size_t used = 0;
        double d = 0;
        try { d = std::stod(t.substr(i, 40), &used); } catch (...) { used = 0; }
        if (!used) fail("unexpected character");
        i += used;
        return Json(d);
    }
};

Json Json::parse(const std::string &text) {
    JsonParser p{text};
    Json j = p.value();
    p.ws();
    if (p.i != text.size()) p.fail("trailing characters");
    return j;
}

Json &Json::operator[](const std::string &key) {
    if (kind_ == Kind::null) kind_ = Kind::object;
    for (auto &kv : obj_)
        if (kv.first == key) return kv.second;
    obj_.emplace_back(key, Json());
    return obj_.back().second;
}

const Json *Json::find(const std::string &key) const {
    for (auto &kv : obj_)
        if (kv.first == key) return &kv.second;
    return nullptr;
}

std::string Json::get_str(const std::string &key, const std::string &def) const {
    const Json *j = find(key);
    return j && j->kind_ == Kind::string ? j->s_ : def;
}

double Json::get_num(const std::string &key, double def) const {
    const Json *j = find(key);
    return j && j->kind_ == Kind::number ? j->d_ : def;
}

static void quote(std::string &out, const std::string &s) {
    out += '"';
    for (char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        default:
            if ((unsigned char)c < 0x20) {
                char b[8];
                std::snprintf(b, sizeof b, "\\u%04x", c);
                out += b;
            } else {
                out += c;
            }
        }
    }
    out += '"';
}

void Json::dump_to(std::string &out, int indent, int depth) const {
    auto nl = [&](int d) {
        if (indent <= 0) return;
        out += '\n';
        out.append(size_t(indent * d), ' ');
    };
    switch (kind_) {
    case Kind::null: out += "null"; break;
    case Kind::boolean: out += b_ ? "true" : "false"; break;
    case Kind::number: {
        char b[64];
        if (std::isfinite(d_) && d_ == std::floor(d_) && std::fabs(d_) < 1e15)
            std::snprintf(b, sizeof b, "%.0f", d_);
        else if (std::isfinite(d_))
            std::snprintf(b, sizeof b, "%.6g", d_);
        else
            std::snprintf(b, sizeof b, "null");
        out += b;
        break;
    }
    case Kind::string: quote(out, s_); break;
    case Kind::array:
        out += '[';
        for (size_t k = 0; k < arr_.size(); k++) {
            if (k) out += ',';
            nl(depth + 1);
            arr_[k].dump_to(out, indent, depth + 1);
        }
        if (!arr_.empty()) nl(depth);
        out += ']';
        break;
    case Kind::object:
        out += '{';
        for (size_t k = 0; k < obj_.size(); k++) {
            if (k) out += ',';
            nl(depth + 1);
            quote(out, obj_[k].first);
            out += indent > 0 ? ": " : ":";
            obj_[k].second.dump_to(out, indent, depth + 1);
        }
        if (!obj_.empty()) nl(depth);
        out += '}';
        break;
    }
}

std::string Json::dump(int indent) const {
    std::string out;
    dump_to(out, indent, 0);
    return out;
}

}  // namespace qh::explore
