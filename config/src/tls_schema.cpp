// The tls section of the schema: the default certificate pair (tls.certificate and
// tls.private_key) and the pairs chosen by the client's SNI (tls.certificates).
#include <algorithm>
#include <array>
#include <map>

#include "config_schema.hpp"
#include "host_names.hpp"
#include "tern/config/parse.hpp"

namespace tern::config {

namespace {

constexpr std::array<std::string_view, 3> tls_keys = {"certificate", "private_key", "certificates"};
constexpr std::array<std::string_view, 3> pair_keys = {"names", "certificate", "private_key"};

}  // namespace

std::optional<std::string> Loader::tls_file_of(const MapEntry& entry) {
    const auto text = yaml_.scalar_of(entry);
    if (!text) return std::nullopt;
    if (text->empty()) {
        yaml_.report(entry.line, entry.path, "must not be empty");
        return std::nullopt;
    }
    std::string path = resolved_path(base_directory_, *text);
    if (auto why = why_unreadable(path); !why.empty()) yaml_.report(entry.line, entry.path, why);
    return path;
}

void Loader::load_tls(const MapEntry& entry) {
    if (entry.value.IsNull()) return;
    // Even a malformed section counts as given, so that tls:// listeners are not blamed too.
    tls_given_ = true;
    if (!yaml_.is_section(entry)) return;
    TlsFiles files;
    files.key = entry.path;
    files.line = entry.key_line;
    bool certificate_given = false;
    bool private_key_given = false;
    bool certificates_given = false;
    std::size_t entries_written = 0;  // in tls.certificates, refused ones included
    int certificates_line = 0;
    for (const auto& field : yaml_.entries_of(entry.value, entry.path, tls_keys)) {
        if (field.name == "certificates") {
            certificates_given = true;
            certificates_line = field.line;
            entries_written = load_certificates(field, files.certificates);
            continue;
        }
        const bool is_certificate = field.name == "certificate";
        (is_certificate ? certificate_given : private_key_given) = true;
        (is_certificate ? files.certificate_line : files.private_key_line) = field.line;
        if (auto path = tls_file_of(field)) {
            (is_certificate ? files.certificate : files.private_key) = std::move(*path);
        }
    }
    if (!certificates_given) {
        // The single pair of old: the texts stay as they were.
        if (!certificate_given) {
            yaml_.report(entry.key_line, entry.path + ".certificate",
                         "missing; the tls section needs certificate and private_key");
        }
        if (!private_key_given) {
            yaml_.report(entry.key_line, entry.path + ".private_key",
                         "missing; the tls section needs certificate and private_key");
        }
    } else if (certificate_given != private_key_given) {
        // Half a default pair is a mistake, not a request for tls.certificates[0].
        yaml_.report(entry.key_line,
                     entry.path + (certificate_given ? ".private_key" : ".certificate"),
                     "missing; the default pair needs both certificate and private_key (leave "
                     "both out to serve tls.certificates[0] by default)");
    } else if (!certificate_given) {
        if (entries_written == 0) {
            yaml_.report(certificates_line, entry.path + ".certificates",
                         "needs at least one entry (or give tls.certificate and "
                         "tls.private_key)");
        } else if (!files.certificates.empty()) {  // else every entry was refused, and said so
            const CertificatePair& first = files.certificates.front();
            files.certificate = first.certificate;
            files.private_key = first.private_key;
            files.key = first.key;
            files.line = first.line;
            files.certificate_line = first.certificate_line;
            files.private_key_line = first.private_key_line;
        }
    }
    config_.tls = std::move(files);
}

std::size_t Loader::load_certificates(const MapEntry& entry, std::vector<CertificatePair>& out) {
    if (entry.value.IsNull()) return 0;  // an empty list, as everywhere
    if (!entry.value.IsSequence()) {
        yaml_.report(entry.line, entry.path,
                     std::string("expected a list of entries with names, certificate and "
                                 "private_key, got ") +
                         kind_of(entry.value));
        return 1;  // not a list, but not an empty one either
    }
    // Which entry listed each name first: a name served by two pairs is ambiguous.
    std::map<std::string, std::string, std::less<>> path_of_name;
    std::size_t index = 0;
    for (const auto& element : entry.value) {
        const std::string path = entry.path + "[" + std::to_string(index++) + "]";
        const int line = YamlDiagnostics::line_of(element, entry.line);
        if (!element.IsMap()) {
            yaml_.report(line, path,
                         std::string("expected a map with names, certificate and private_key, "
                                     "got ") +
                             kind_of(element));
            continue;
        }
        CertificatePair pair;
        pair.key = path;
        pair.line = line;
        bool names_given = false;
        bool certificate_given = false;
        bool private_key_given = false;
        for (const auto& field : yaml_.entries_of(element, path, pair_keys)) {
            if (field.name == "names") {
                names_given = true;
                const auto items = yaml_.string_list_of(field);
                if (!items) continue;
                if (field.value.size() == 0) {
                    yaml_.report(field.line, field.path,
                                 "needs at least one host name, such as turn.example.com");
                    continue;
                }
                for (const auto& item : *items) {
                    std::string name = lowercase(item.text);
                    if (name.empty()) {
                        yaml_.report(item.line, item.path, "must not be empty");
                        continue;
                    }
                    if (is_address_literal(name)) {
                        yaml_.report(item.line, item.path,
                                     quote_for_message(name) +
                                         " is an IP address; clients send no SNI for an address, "
                                         "so only the default pair (tls.certificate) serves it");
                        continue;
                    }
                    if (const std::string why = why_not_host_name(name); !why.empty()) {
                        yaml_.report(item.line, item.path, why);
                        continue;
                    }
                    const auto [earlier, inserted] = path_of_name.try_emplace(name, item.path);
                    if (!inserted) {
                        yaml_.report(item.line, item.path, "duplicate of " + earlier->second);
                        continue;
                    }
                    pair.names.push_back(std::move(name));
                }
                continue;
            }
            const bool is_certificate = field.name == "certificate";
            (is_certificate ? certificate_given : private_key_given) = true;
            (is_certificate ? pair.certificate_line : pair.private_key_line) = field.line;
            if (auto file = tls_file_of(field)) {
                (is_certificate ? pair.certificate : pair.private_key) = std::move(*file);
            }
        }
        const auto missing = [&](bool given, const char* key) {
            if (given) return;
            yaml_.report(line, path + "." + key,
                         "missing; each entry of tls.certificates needs names, certificate and "
                         "private_key");
        };
        missing(names_given, "names");
        missing(certificate_given, "certificate");
        missing(private_key_given, "private_key");
        out.push_back(std::move(pair));
    }
    return index;
}

}  // namespace tern::config
