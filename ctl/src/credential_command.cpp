// ternctl credential: arguments, where the secret comes from, and the two output forms.
#include "tern/ctl/credential_command.hpp"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <istream>
#include <optional>
#include <ostream>
#include <string_view>

#include "tern/auth/rest_credential.hpp"
#include "tern/config/config.hpp"
#include "tern/config/secrets_file.hpp"

namespace tern::ctl {

namespace {

// As much of standard input as a secrets file may hold; more is the wrong input.
constexpr std::size_t max_stdin_bytes = std::size_t{64} << 10;

std::optional<long long> parse_int(const std::string& s) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno != 0) return std::nullopt;
    return v;
}

std::string json_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            constexpr std::string_view hex = "0123456789abcdef";
            out += "\\u00";
            out += hex[static_cast<unsigned char>(c) >> 4];
            out += hex[static_cast<unsigned char>(c) & 0xF];
        } else {
            out += c;
        }
    }
    return out;
}

// RFC 7064 / RFC 7065 schemes a browser accepts in RTCIceServer.urls.
bool is_ice_uri(std::string_view uri) {
    for (const std::string_view scheme : {"turn:", "turns:", "stun:", "stuns:"}) {
        if (uri.size() > scheme.size() && uri.substr(0, scheme.size()) == scheme) return true;
    }
    return false;
}

// {"urls": [...], "username": "...", "credential": "..."}: one entry of
// RTCConfiguration.iceServers.
std::string ice_server_json(const std::vector<std::string>& uris, const auth::RestCredential& c) {
    // Appended piecewise: g++ 12 raises a false -Wrestrict on chained std::string operator+.
    std::string out = "{\"urls\": [";
    for (std::size_t i = 0; i < uris.size(); ++i) {
        if (i != 0) out += ", ";
        out += '"';
        out += json_escape(uris[i]);
        out += '"';
    }
    out += "], \"username\": \"";
    out += json_escape(c.username);
    out += "\", \"credential\": \"";
    out += json_escape(c.password);
    out += "\"}";
    return out;
}

// Where the secret comes from: exactly one of these options.
enum class Source : std::uint8_t { literal, secrets_file, config };

struct Options {
    std::optional<Source> source;
    std::string source_value;  // the secret, "-", or a file name
    int sources_given = 0;
    std::optional<std::string> user;
    long long ttl = 86400;
    std::optional<long long> now;
    bool json = false;
    bool force = false;
    std::vector<std::string> uris;
};

// The signing secret and, from a config file, the longest credential ternd accepts; or an
// empty secret after the refusal has been printed.
struct Secret {
    std::string text;
    std::optional<std::uint32_t> max_lifetime;
};

Secret first_of(const config::SecretsFile& file, std::ostream& err) {
    // ternd refuses the whole file for one bad line, so ternctl does too: a secret from a file
    // ternd would not load signs credentials no server accepts.
    if (!file.problems.empty()) {
        for (const auto& problem : file.problems) err << "ternctl: " << problem << "\n";
        return {};
    }
    return {file.secrets.front(), std::nullopt};
}

Secret secret_of(const Options& o, std::istream& in, std::ostream& err) {
    if (o.source == Source::secrets_file)
        return first_of(config::read_secrets_file(o.source_value), err);
    if (o.source == Source::config) {
        const auto loaded = config::load_config_file(o.source_value);
        if (!loaded.config) {
            for (const auto& e : loaded.errors) err << "ternctl: " << e.to_string() << "\n";
            return {};
        }
        const auto& secrets = loaded.config->auth.secrets;
        if (secrets.empty()) {
            err << "ternctl: " << o.source_value
                << " sets no REST secret (auth.secrets or auth.secrets_file)\n";
            return {};
        }
        // The first is the newest (docs/credentials.md, rotating the secret): the one to sign
        // with while older ones are still accepted.
        return {secrets.front(), loaded.config->auth.max_credential_lifetime};
    }
    if (o.source_value != "-") return {o.source_value, std::nullopt};
    // A secret piped in is read by the secrets file's rule, not taken verbatim: `grep ... |`
    // of a CRLF file, or a trailing blank, would otherwise become part of the HMAC key.
    std::string text(max_stdin_bytes + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > max_stdin_bytes) {
        err << "ternctl: standard input holds more than " << (max_stdin_bytes >> 10)
            << " KiB; pipe in one secret\n";
        return {};
    }
    return first_of(config::parse_secrets(text, "standard input"), err);
}

// Parses the arguments into `o`; false after printing what is wrong.
bool parse(const std::vector<std::string>& args, Options& o, std::ostream& err) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&]() -> std::optional<std::string> {
            if (i + 1 >= args.size()) return std::nullopt;
            return args[++i];
        };
        const auto source = [&](Source s) {
            const auto v = value();
            if (!v) {
                err << "ternctl: " << a << " needs a value\n";
                return false;
            }
            o.source = s;
            o.source_value = *v;
            ++o.sources_given;
            return true;
        };
        if (a == "--secret") {
            if (!source(Source::literal)) return false;
        } else if (a == "--secrets-file") {
            if (!source(Source::secrets_file)) return false;
        } else if (a == "--config") {
            if (!source(Source::config)) return false;
        } else if (a == "--user") {
            o.user = value();
            if (!o.user) {
                err << "ternctl: --user needs a name\n";
                return false;
            }
        } else if (a == "--ttl") {
            const auto v = value();
            const auto n = v ? parse_int(*v) : std::nullopt;
            if (!n || *n <= 0) {
                err << "ternctl: --ttl needs a positive number of seconds\n";
                return false;
            }
            o.ttl = *n;
        } else if (a == "--now") {
            const auto v = value();
            o.now = v ? parse_int(*v) : std::nullopt;
            if (!o.now) {
                err << "ternctl: --now needs a unix timestamp\n";
                return false;
            }
        } else if (a == "--uri") {
            const auto v = value();
            if (!v || !is_ice_uri(*v)) {
                err << "ternctl: --uri needs a turn:, turns:, stun: or stuns: URI\n";
                return false;
            }
            o.uris.push_back(*v);
        } else if (a == "--json") {
            o.json = true;
        } else if (a == "--force") {
            o.force = true;
        } else {
            err << "ternctl: unknown option " << a << "\n";
            return false;
        }
    }
    if (o.sources_given != 1 || !o.user) {
        err << "ternctl: credential needs --user and one of --secret, --secrets-file or "
               "--config\n";
        return false;
    }
    if (o.user->empty()) {
        err << "ternctl: --user is empty; the credential's user name would be only its expiry\n";
        return false;
    }
    if (o.ttl > max_credential_ttl && !o.force) {
        err << "ternctl: --ttl " << o.ttl << " is more than 7 days (" << max_credential_ttl
            << " s); the TTL is in seconds, not milliseconds (--force mints it anyway)\n";
        return false;
    }
    return true;
}

void print(const Options& o, const auth::RestCredential& c, std::ostream& out) {
    if (o.json) {
        // With --uri the object is itself a valid RTCIceServer (browsers ignore "ttl").
        out << "{";
        if (!o.uris.empty()) {
            const std::string server = ice_server_json(o.uris, c);
            out << server.substr(1, server.size() - 2) << ", ";
        } else {
            out << "\"username\": \"" << json_escape(c.username) << "\", \"credential\": \""
                << json_escape(c.password) << "\", ";
        }
        out << "\"ttl\": " << o.ttl << "}\n";
        return;
    }
    out << "username: " << c.username << "\npassword: " << c.password << "\n";
    if (!o.uris.empty()) out << "iceServers entry:\n" << ice_server_json(o.uris, c) << "\n";
}

}  // namespace

int credential_command(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                       std::ostream& err) {
    Options o;
    if (!parse(args, o, err)) return 2;
    const Secret secret = secret_of(o, in, err);
    if (secret.text.empty()) {
        if (o.source == Source::literal && o.source_value.empty()) {
            err << "ternctl: the secret is empty\n";
        }
        return 2;
    }
    // A short secret can be guessed offline from one credential; ternd itself requires this much
    // of every secrets-file line and warns about shorter inline ones.
    if (secret.text.size() < config::min_file_secret_bytes && !o.force) {
        err << "ternctl: the secret is " << secret.text.size() << " bytes; at least "
            << config::min_file_secret_bytes
            << " are needed (openssl rand -base64 32 makes one; --force uses it anyway)\n";
        return 2;
    }
    if (secret.max_lifetime && o.ttl > static_cast<long long>(*secret.max_lifetime)) {
        err << "ternctl: warning: ternd refuses credentials valid for more than "
            << *secret.max_lifetime << " s (auth.max_credential_lifetime)\n";
    }
    const long long t = o.now ? *o.now
                              : std::chrono::duration_cast<std::chrono::seconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
    print(o, auth::make_rest_credential(secret.text, *o.user, t, o.ttl), out);
    return 0;
}

}  // namespace tern::ctl
