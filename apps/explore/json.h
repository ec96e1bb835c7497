// A minimal JSON value (parse + pretty print) for the tuning database and --json reports.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace qh::explore {

class Json {
public:
    enum class Kind { null, boolean, number, string, array, object };
    Json() = default;
    Json(bool b) : kind_(Kind::boolean), b_(b) {}
    Json(double d) : kind_(Kind::number), d_(d) {}
    Json(int i) : kind_(Kind::number), d_(i) {}
    Json(const char *s) : kind_(Kind::string), s_(s) {}
    Json(std::string s) : kind_(Kind::string), s_(std::move(s)) {}
    static Json array() { Json j; j.kind_ = Kind::array; return j; }
    static Json object() { Json j; j.kind_ = Kind::object; return j; }
    // Throws std::runtime_error with the byte offset on malformed text.
    static Json parse(const std::string &text);

    Kind kind() const { return kind_; }
    bool is_object() const { return kind_ == Kind::object; }
    bool is_array() const { return kind_ == Kind::array; }
    double num() const { return d_; }
    bool boolean() const { return b_; }
    const std::string &str() const { return s_; }
    // Object access (insertion order kept for readable files).
    Json &operator[](const std::string &key);
    const Json *find(const std::string &key) const;
    std::string get_str(const std::string &key, const std::string &def = "") const;
    double get_num(const std::string &key, double def = 0) const;
    const std::vector<std::pair<std::string, Json>> &items() const { return obj_; }
    // Array access.
    std::vector<Json> &elems() { return arr_; }
    const std::vector<Json> &elems() const { return arr_; }
    void push(Json j) { arr_.push_back(std::move(j)); }

    std::string dump(int indent = 2) const;

private:
    void dump_to(std::string &out, int indent, int depth) const;
    Kind kind_ = Kind::null;
    bool b_ = false;
    double d_ = 0;
    std::string s_;
    std::vector<Json> arr_;
    std::vector<std::pair<std::string, Json>> obj_;
    friend struct JsonParser;
};

}  // namespace qh::explore
