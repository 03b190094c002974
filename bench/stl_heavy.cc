// An STL-heavy translation unit for bench/stack_bench.sh: what the tracer
// sees when `clang++ -fsyntax-only` parses it is many deep, distinct call
// stacks sharing their callers (the parser's and Sema's recursion), the
// workload of issue 16.  Only parsed, never run.
#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

namespace bench {

template <typename K, typename V> struct table {
    std::map<K, std::vector<V>> rows;
    std::unordered_map<K, std::set<V>> index;

    void add(const K &k, const V &v)
    {
        rows[k].push_back(v);
        index[k].insert(v);
    }

    template <typename F> std::vector<V> select(const K &k, F pred) const
    {
        std::vector<V> out;
        auto it = rows.find(k);
        if (it != rows.end())
            std::copy_if(it->second.begin(), it->second.end(), std::back_inserter(out), pred);
        std::sort(out.begin(), out.end());
        return out;
    }
};

template <int N> struct depth {
    static std::string name() { return depth<N - 1>::name() + std::to_string(N); }
};
template <> struct depth<0> {
    static std::string name() { return "0"; }
};

using value = std::variant<int, double, std::string, std::vector<int>>;

inline std::string show(const value &v)
{
    return std::visit(
        [](const auto &x) {
            std::ostringstream os;
            if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::vector<int>>)
                os << std::accumulate(x.begin(), x.end(), 0);
            else
                os << x;
            return os.str();
        },
        v);
}

inline int run()
{
    table<std::string, int> a;
    table<int, std::string> b;
    table<long, double> c;
    table<std::string, std::pair<int, std::string>> d;
    a.add("x", 1);
    b.add(1, "x");
    c.add(1L, 2.0);
    d.add("y", {2, "y"});
    std::regex re("([a-z]+)\\s*=\\s*([0-9]+)");
    std::smatch m;
    std::string text = "alpha = 42";
    std::map<std::string, std::function<value(int)>> makers = {
        {"int", [](int i) { return value(i); }},
        {"double", [](int i) { return value(i * 0.5); }},
        {"string", [](int i) { return value(std::to_string(i)); }},
        {"vector", [](int i) { return value(std::vector<int>(size_t(i), i)); }},
    };
    std::vector<std::unique_ptr<std::map<int, std::string>>> maps;
    maps.push_back(std::make_unique<std::map<int, std::string>>());
    for (auto &[k, f] : makers)
        std::cout << k << show(f(3)) << '\n';
    std::cout << depth<40>::name() << a.select("x", [](int i) { return i > 0; }).size()
              << b.select(1, [](const std::string &s) { return !s.empty(); }).size()
              << c.select(1L, [](double x) { return x > 1; }).size()
              << d.select("y", [](const auto &p) { return p.first > 0; }).size()
              << std::regex_match(text, m, re) << '\n';
    return 0;
}

} // namespace bench
