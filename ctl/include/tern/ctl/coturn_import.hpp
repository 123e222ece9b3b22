// `ternctl import-coturn`: a coturn turnserver.conf turned into a tern.yaml. Pure: text in, YAML
// and notes out; the command around it reads the file and prints them.
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace tern::ctl {

// An option that was not carried over, or was carried with a change the operator should know.
struct ImportNote {
    int line = 0;        // 1-based line of the option in turnserver.conf; 0 = the file at large
    std::string option;  // the coturn option name
    std::string reason;  // why, and what to do instead
    // "turnserver.conf:12: cli-port: tern has no ...", `file` naming the converted file.
    std::string to_string(std::string_view file) const;
};

struct CoturnImport {
    std::string yaml;  // a complete tern.yaml, a comment header first
    std::vector<ImportNote> notes;
};

// Converts the text of a turnserver.conf ("option", "option=value", # comments). The YAML
// passes ternd --check-config when the files it names (cert, pkey) are readable.
CoturnImport import_coturn(std::string_view turnserver_conf);

// The command: import-coturn FILE. YAML to `out`, one line per note to `err`; 0, 1 when the
// file cannot be read, 2 for a usage mistake.
int import_coturn_command(const std::vector<std::string>& args, std::ostream& out,
                          std::ostream& err);

}  // namespace tern::ctl
