// ternctl import-coturn FILE: the converter's command line.
#include <fstream>
#include <ostream>
#include <sstream>

#include "tern/ctl/coturn_import.hpp"

namespace tern::ctl {

int import_coturn_command(const std::vector<std::string>& args, std::ostream& out,
                          std::ostream& err) {
    if (args.size() != 1 || args.front().starts_with("-")) {
        err << "ternctl: import-coturn needs one file: ternctl import-coturn "
               "/etc/turnserver.conf > tern.yaml\n";
        return 2;
    }
    const std::string& path = args.front();
    std::ifstream file(path, std::ios::binary);
    std::ostringstream text;
    if (!file || !(text << file.rdbuf())) {
        err << "ternctl: cannot read " << path << "\n";
        return 1;
    }
    const auto result = import_coturn(text.str());
    out << result.yaml;
    for (const auto& n : result.notes) err << "ternctl: " << n.to_string(path) << "\n";
    return 0;
}

}  // namespace tern::ctl
