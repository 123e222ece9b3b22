// Credential and integrity benchmarks: MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT checks on an
// authenticated Allocate, long-term key and TURN REST password derivation, nonces, full auth.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench_messages.hpp"
#include "tern/auth/credential_store.hpp"
#include "tern/auth/long_term_authenticator.hpp"
#include "tern/auth/nonce_authority.hpp"
#include "tern/auth/rest_credential.hpp"
#include "tern/protocol/integrity.hpp"
#include "tern/protocol/message.hpp"

namespace tern::bench {
namespace {

using protocol::IntegrityResult;
using protocol::MessageView;

void set_message_throughput(benchmark::State& state, std::size_t bytes) {
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
    state.counters["msg_bytes"] = static_cast<double>(bytes);
}

template <class Verify>
void run_verify(benchmark::State& state, const Built& m, std::span<const std::uint8_t> key,
                Verify verify) {
    MessageView view;
    if (MessageView::parse(m.bytes(), view) != protocol::ParseError::ok ||
        verify(view, key) != IntegrityResult::ok) {
        state.SkipWithError("benchmark message does not verify");
        return;
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(key.data());
        const IntegrityResult r = verify(view, key);
        benchmark::DoNotOptimize(r);
    }
    set_message_throughput(state, m.size);
}

void BM_Integrity_VerifySha1(benchmark::State& state) {
    const auto key = rest_key(auth::PasswordAlgorithm::md5);
    const Built m = allocate_request(sample_nonce, key.bytes());
    run_verify(state, m, key.bytes(), [](const MessageView& v, std::span<const std::uint8_t> k) {
        return protocol::verify_message_integrity(v, k);
    });
}
BENCHMARK(BM_Integrity_VerifySha1);

void BM_Integrity_VerifySha256(benchmark::State& state) {
    const auto key = rest_key(auth::PasswordAlgorithm::sha256);
    const Built m = allocate_request(sample_nonce, key.bytes(), true);
    run_verify(state, m, key.bytes(), [](const MessageView& v, std::span<const std::uint8_t> k) {
        return protocol::verify_message_integrity_sha256(v, k);
    });
}
BENCHMARK(BM_Integrity_VerifySha256);

// A wrong key costs the same HMAC plus the constant-time compare; worth seeing it is no cheaper.
void BM_Integrity_VerifySha1_Mismatch(benchmark::State& state) {
    const auto key = rest_key(auth::PasswordAlgorithm::md5);
    const Built m = allocate_request(sample_nonce, key.bytes());
    const auto wrong = auth::md5_key(rest_username, realm, "not-the-password");
    MessageView view;
    if (MessageView::parse(m.bytes(), view) != protocol::ParseError::ok) {
        state.SkipWithError("benchmark message does not parse");
        return;
    }
    for (auto _ : state) {
        const IntegrityResult r = protocol::verify_message_integrity(view, wrong.bytes());
        benchmark::DoNotOptimize(r);
    }
    set_message_throughput(state, m.size);
}
BENCHMARK(BM_Integrity_VerifySha1_Mismatch);

void BM_Integrity_VerifyFingerprint(benchmark::State& state) {
    const auto key = rest_key(auth::PasswordAlgorithm::md5);
    const Built m = allocate_request(sample_nonce, key.bytes());
    run_verify(state, m, key.bytes(), [](const MessageView& v, std::span<const std::uint8_t>) {
        return protocol::verify_fingerprint(v);
    });
}
BENCHMARK(BM_Integrity_VerifyFingerprint);

// MD5(user:realm:pass): done per request for REST users, since their keys cannot be precomputed.
void BM_Auth_Md5KeyDerivation(benchmark::State& state) {
    const std::string password = auth::rest_password(rest_secret, rest_username);
    for (auto _ : state) {
        auto key = auth::md5_key(rest_username, realm, password);
        benchmark::DoNotOptimize(key);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Auth_Md5KeyDerivation);

void BM_Auth_Sha256KeyDerivation(benchmark::State& state) {
    const std::string password = auth::rest_password(rest_secret, rest_username);
    for (auto _ : state) {
        auto key = auth::sha256_key(rest_username, realm, password);
        benchmark::DoNotOptimize(key);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Auth_Sha256KeyDerivation);

// base64(HMAC-SHA1(secret, username)): the TURN REST password, per request and per secret.
void BM_Auth_RestPassword(benchmark::State& state) {
    for (auto _ : state) {
        std::string password = auth::rest_password(rest_secret, rest_username);
        benchmark::DoNotOptimize(password);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Auth_RestPassword);

const protocol::TransportAddress& bench_client() {
    static const auto client = must_parse("203.0.113.77:51234");
    return client;
}

void BM_Auth_NonceIssue(benchmark::State& state) {
    const auth::NonceAuthority nonces(rest_secret, auth::NonceAuthority::default_lifetime, {});
    for (auto _ : state) {
        std::string nonce = nonces.issue(now_unix, bench_client());
        benchmark::DoNotOptimize(nonce);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Auth_NonceIssue);

void BM_Auth_NonceCheck(benchmark::State& state) {
    const auth::NonceAuthority nonces(rest_secret, auth::NonceAuthority::default_lifetime, {});
    const std::string nonce = nonces.issue(now_unix, bench_client());
    if (nonces.check(nonce, now_unix + 5, bench_client()) != auth::NonceStatus::valid) {
        state.SkipWithError("nonce does not check");
        return;
    }
    for (auto _ : state) {
        const auto status = nonces.check(nonce, now_unix + 5, bench_client());
        benchmark::DoNotOptimize(status);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Auth_NonceCheck);

// The whole long-term check of an Allocate with a REST credential: nonce MAC, REST password,
// key derivation, MESSAGE-INTEGRITY. Arg = number of REST secrets configured (rotation); the
// newest one signed the credential, so the extra secrets show what rotation costs.
void BM_Auth_AuthenticateRestAllocate(benchmark::State& state) {
    std::vector<std::string> secrets{std::string(rest_secret)};
    for (std::int64_t i = 1; i < state.range(0); ++i) {
        secrets.push_back("older-secret-" + std::to_string(i));
    }
    // The signing secret listed last, so every other secret's key is tried and fails first.
    std::reverse(secrets.begin(), secrets.end());
    const auth::CredentialStore store(std::string(realm), secrets, {});
    const auth::NonceAuthority nonces(rest_secret, auth::NonceAuthority::default_lifetime, {});
    const auth::LongTermAuthenticator authenticator(store, nonces);
    const std::string nonce = nonces.issue(now_unix, bench_client());
    const auto key = rest_key(auth::PasswordAlgorithm::md5);
    const Built m = allocate_request(nonce, key.bytes());
    MessageView view;
    if (MessageView::parse(m.bytes(), view) != protocol::ParseError::ok ||
        !authenticator.authenticate(view, bench_client(), now_unix + 5).ok()) {
        state.SkipWithError("benchmark request does not authenticate");
        return;
    }
    for (auto _ : state) {
        auto result = authenticator.authenticate(view, bench_client(), now_unix + 5);
        benchmark::DoNotOptimize(result);
    }
    set_message_throughput(state, m.size);
}
BENCHMARK(BM_Auth_AuthenticateRestAllocate)->Arg(1)->Arg(3);

}  // namespace
}  // namespace tern::bench
