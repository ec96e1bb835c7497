#include "plot.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace qh::explore {

namespace {

const double W = 800, H = 500, L = 80, R = 30, T = 50, B = 60;

std::string esc(const std::string &s) {
    std::string r;
    for (char c : s) {
        if (c == '<') r += "&lt;";
        else if (c == '>') r += "&gt;";
        else if (c == '&') r += "&amp;";
        else r += c;
    }
    return r;
}

std::string fmt(const char *f, double a, double b = 0, double c = 0, double d = 0) {
    char buf[256];
    std::snprintf(buf, sizeof buf, f, a, b, c, d);
    return buf;
}

std::ofstream open_svg(const std::string &path, const std::string &title) {
    if (path.size() < 4 || path.substr(path.size() - 4) != ".svg")
        throw std::invalid_argument("--plot writes SVG only (got '" + path +
                                    "'); convert with e.g. rsvg-convert for PNG");
    std::ofstream f(path);
    if (!f) throw std::runtime_error("cannot write " + path);
    f << fmt("<svg xmlns='http://www.w3.org/2000/svg' width='%g' height='%g' font-family='sans-serif' font-size='12'>\n", W, H);
    f << "<rect width='100%' height='100%' fill='white'/>\n";
    f << fmt("<text x='%g' y='28' font-size='16' text-anchor='middle'>", W / 2) << esc(title) << "</text>\n";
    f << fmt("<rect x='%g' y='%g' width='%g' height='%g' fill='none' stroke='black'/>\n", L, T, W - L - R, H - T - B);
    return f;
}

}  // namespace

void plot_trials_svg(const std::string &path, const TuneResult &r, const std::string &title) {
    auto f = open_svg(path, title);
    double ymax = r.default_trial.ms;
    for (auto &t : r.trials)
        if (t.correct) ymax = std::max(ymax, t.ms);
    ymax *= 1.1;
    const double n = std::max<double>(1, r.trials.size());
    auto X = [&](double i) { return L + (W - L - R) * (i + 0.5) / n; };
    auto Y = [&](double ms) { return H - B - (H - T - B) * ms / ymax; };
    for (int k = 0; k <= 5; k++) {
        double v = ymax * k / 5;
        f << fmt("<line x1='%g' y1='%g' x2='%g' y2='%g' stroke='#ddd'/>", L, Y(v), W - R, Y(v));
        f << fmt("<text x='%g' y='%g' text-anchor='end'>%.3g</text>\n", L - 5, Y(v) + 4, v);
    }
    f << fmt("<text x='%g' y='%g' text-anchor='middle'>trial</text>\n", (L + W - R) / 2, H - 20);
    f << fmt("<text x='18' y='%g' transform='rotate(-90 18 %g)' text-anchor='middle'>time per run (ms, median)</text>\n", (T + H - B) / 2, (T + H - B) / 2);
    f << fmt("<line x1='%g' y1='%g' x2='%g' y2='%g' stroke='blue' stroke-dasharray='6 4'/>", L, Y(r.default_trial.ms), W - R, Y(r.default_trial.ms));
    f << fmt("<text x='%g' y='%g' fill='blue' text-anchor='end'>default %.3f ms</text>\n", W - R - 4, Y(r.default_trial.ms) - 4, r.default_trial.ms);
    for (size_t i = 0; i < r.trials.size(); i++) {
        const auto &t = r.trials[i];
        if (t.correct) {
            const char *col = (int)i == r.best ? "green" : "black";
            f << fmt("<circle cx='%g' cy='%g' r='%g' fill='", X(i), Y(t.ms), (int)i == r.best ? 6.0 : 3.5) << col << "'><title>"
              << esc(t.knobs) << fmt(": %.3f ms</title></circle>\n", t.ms);
        } else {  // rejected: compile error or wrong result, drawn at the bottom
            f << fmt("<text x='%g' y='%g' fill='red' text-anchor='middle'>x<title>", X(i), H - B - 4) << esc(t.knobs + ": " + t.error.substr(0, 200)) << "</title></text>\n";
        }
        if (r.trials.size() <= 40 || i % 5 == 0)
            f << fmt("<text x='%g' y='%g' text-anchor='middle' font-size='10'>%g</text>\n", X(i), H - B + 14, double(i + 1));
    }
    f << fmt("<text x='%g' y='%g'>green: best; red x: rejected (failed to build or not bit-exact)</text>\n", L, T - 8);
    f << "</svg>\n";
}

void plot_roofline_svg(const std::string &path, const std::vector<RooflinePoint> &pts,
                       double peak_gops, double bw_gbps, const std::string &title) {
    auto f = open_svg(path, title);
    double xmin = 1, xmax = 1000, ymin = 1, ymax = std::max(1000.0, peak_gops * 2);
    for (auto &p : pts) {
        xmin = std::min(xmin, p.intensity / 2);
        xmax = std::max(xmax, p.intensity * 2);
        ymin = std::min(ymin, std::max(0.01, p.gops / 2));
    }
    xmin = std::pow(10, std::floor(std::log10(xmin)));
    xmax = std::pow(10, std::ceil(std::log10(xmax)));
    ymin = std::pow(10, std::floor(std::log10(ymin)));
    ymax = std::pow(10, std::ceil(std::log10(ymax)));
    auto X = [&](double v) { return L + (W - L - R) * std::log10(v / xmin) / std::log10(xmax / xmin); };
    auto Y = [&](double v) { return H - B - (H - T - B) * std::log10(v / ymin) / std::log10(ymax / ymin); };
    for (double v = xmin; v <= xmax * 1.001; v *= 10) {
        f << fmt("<line x1='%g' y1='%g' x2='%g' y2='%g' stroke='#ddd'/>", X(v), T, X(v), H - B);
        f << fmt("<text x='%g' y='%g' text-anchor='middle'>%g</text>\n", X(v), H - B + 16, v);
    }
    for (double v = ymin; v <= ymax * 1.001; v *= 10) {
        f << fmt("<line x1='%g' y1='%g' x2='%g' y2='%g' stroke='#ddd'/>", L, Y(v), W - R, Y(v));
        f << fmt("<text x='%g' y='%g' text-anchor='end'>%g</text>\n", L - 5, Y(v) + 4, v);
    }
    f << fmt("<text x='%g' y='%g' text-anchor='middle'>arithmetic intensity (integer ops per compulsory byte)</text>\n", (L + W - R) / 2, H - 20);
    f << fmt("<text x='18' y='%g' transform='rotate(-90 18 %g)' text-anchor='middle'>GOP/s</text>\n", (T + H - B) / 2, (T + H - B) / 2);
    // Roofs: min(peak, bw * I), drawn as a polyline.
    if (peak_gops > 0 && bw_gbps > 0) {
        double knee = peak_gops / bw_gbps;
        double x0 = std::max(xmin, ymin / bw_gbps);
        f << fmt("<polyline fill='none' stroke='red' stroke-width='2' points='%g,%g ", X(x0), Y(bw_gbps * x0));
        f << fmt("%g,%g %g,%g'/>\n", X(std::min(knee, xmax)), Y(std::min(peak_gops, bw_gbps * xmax)), X(xmax), Y(peak_gops));
        f << fmt("<text x='%g' y='%g' fill='red' text-anchor='end'>VNNI peak %.0f GOP/s</text>\n", W - R - 4, Y(peak_gops) - 6, peak_gops);
        f << fmt("<text x='%g' y='%g' fill='red'>memory %.1f GB/s</text>\n", X(x0) + 6, Y(bw_gbps * x0) - 8, bw_gbps);
    }
    for (auto &p : pts) {
        f << fmt("<circle cx='%g' cy='%g' r='4' fill='black'><title>", X(p.intensity), Y(p.gops))
          << esc(p.label) << fmt(": %.1f GOP/s at %.1f op/B</title></circle>\n", p.gops, p.intensity);
        f << fmt("<text x='%g' y='%g' font-size='9'>", X(p.intensity) + 5, Y(p.gops) - 5) << esc(p.label) << "</text>\n";
    }
    f << "</svg>\n";
}

double measure_read_bandwidth_gbps() {
    std::vector<uint64_t> buf(size_t(8) << 20, 1);  // 64 MiB, well past the caches
    std::vector<double> gbps;
    volatile uint64_t sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        auto t0 = std::chrono::steady_clock::now();
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = 0; i + 3 < buf.size(); i += 4) {
            s0 += buf[i]; s1 += buf[i + 1]; s2 += buf[i + 2]; s3 += buf[i + 3];
        }
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        sink = sink + s0 + s1 + s2 + s3;
        gbps.push_back(double(buf.size() * 8) / s * 1e-9);
    }
    std::sort(gbps.begin(), gbps.end());
    return gbps[gbps.size() / 2];
}

}  // namespace qh::explore
