#include "tern/server/io/fleet_store.hpp"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <string_view>

namespace tern::server {

namespace {

using namespace std::chrono_literals;

constexpr auto connect_timeout = 500ms;
// A command that takes longer marks the store down (a paused Redis); Allocates never wait this
// long: they wait fleet.allocate_wait_ms in the worker.
constexpr auto command_timeout = 1000ms;
constexpr auto heartbeat_every = 1s;
constexpr auto registry_lifetime = 5s;  // a node's hash and snapshot outlive 4 missed beats
constexpr auto backoff_first = 100ms;
constexpr auto backoff_last = 5000ms;
constexpr std::size_t renew_batch = 256;
constexpr std::size_t max_queued = 65536;    // jobs waiting for the store
constexpr std::size_t max_pipelined = 1024;  // commands in one round trip

// Redis's own clock, so nodes with skewed clocks agree on when a lease lapses.
constexpr std::string_view now_ms_lua =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) ";

// KEYS[1] lease set; ARGV limit, member, lease ms. 1 = granted, 0 = the user's quota is full.
const std::string acquire_lua = std::string(now_ms_lua) +
                                "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) "
                                "local ms = tonumber(ARGV[3]) "
                                "if not redis.call('ZSCORE', KEYS[1], ARGV[2]) and "
                                "   redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then "
                                "  return 0 end "
                                "redis.call('ZADD', KEYS[1], now + ms, ARGV[2]) "
                                "redis.call('PEXPIRE', KEYS[1], ms) "
                                "return 1";

// KEYS lease sets; ARGV[1] lease ms, ARGV[i + 1] the member held in KEYS[i].
const std::string renew_lua = std::string(now_ms_lua) +
                              "local ms = tonumber(ARGV[1]) "
                              "for i, key in ipairs(KEYS) do "
                              "  redis.call('ZADD', key, now + ms, ARGV[i + 1]) "
                              "  redis.call('PEXPIRE', key, ms) "
                              "end "
                              "return #KEYS";

// KEYS[1] the node's hash, KEYS[2] the node set; ARGV id, lifetime ms, then field/value pairs.
const std::string heartbeat_lua = std::string(now_ms_lua) +
                                  "local ms = tonumber(ARGV[2]) "
                                  "redis.call('DEL', KEYS[1]) "
                                  "redis.call('HSET', KEYS[1], 'updated_ms', now, "
                                  "           unpack(ARGV, 3)) "
                                  "redis.call('PEXPIRE', KEYS[1], ms) "
                                  "redis.call('ZADD', KEYS[2], now, ARGV[1]) "
                                  "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ms) "
                                  "return now";

// KEYS[1] the node set; ARGV[1] the snapshot keys' prefix. Each node id, then its snapshot.
const std::string sessions_lua =
    "local out = {} "
    "for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do "
    "  out[#out + 1] = id "
    "  out[#out + 1] = redis.call('GET', ARGV[1] .. id) "
    "end "
    "return out";

// Lowercase hex SHA-1, as EVALSHA names a script.
std::string sha1_hex(const std::string& text) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int n = 0;
    EVP_Digest(text.data(), text.size(), md.data(), &n, EVP_sha1(), nullptr);
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < n; ++i) {
        out += digits[md[i] >> 4];
        out += digits[md[i] & 0x0f];
    }
    return out;
}

struct ReplyDeleter {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

timeval to_timeval(std::chrono::milliseconds ms) {
    return timeval{static_cast<time_t>(ms.count() / 1000),
                   static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

// One command; null when the connection failed (the context is then unusable).
Reply command(redisContext* c, const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    argv.reserve(args.size());
    lengths.reserve(args.size());
    for (const auto& a : args) {
        argv.push_back(a.data());
        lengths.push_back(a.size());
    }
    return Reply(static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data())));
}

bool is_error(const Reply& r) {
    return r && r->type == REDIS_REPLY_ERROR;
}

std::string text_of(const redisReply* r) {
    if (r == nullptr || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS &&
                         r->type != REDIS_REPLY_ERROR)) {
        return {};
    }
    return std::string(r->str, r->len);
}

}  // namespace

FleetStore::Script::Script(std::string source) : text(std::move(source)), sha(sha1_hex(text)) {}

FleetStore::FleetStore(const config::Fleet& fleet)
    : fleet_(fleet),
      acquire_(acquire_lua),
      renew_(renew_lua),
      heartbeat_(heartbeat_lua),
      sessions_(sessions_lua) {}

FleetStore::~FleetStore() {
    stop();
}

void FleetStore::start() {
    commands_ = std::thread([this] { command_loop(); });
    subscriber_ = std::thread([this] { subscriber_loop(); });
}

void FleetStore::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        // The subscriber blocks in a read with no timeout: shutting its socket down ends it.
        if (subscriber_fd_ >= 0) ::shutdown(subscriber_fd_, SHUT_RDWR);
    }
    wake_.notify_all();
    if (commands_.joinable()) commands_.join();
    if (subscriber_.joinable()) subscriber_.join();
    std::lock_guard lock(mutex_);
    finished_ = true;
    queue_.clear();
}

std::shared_ptr<const FleetDirectory> FleetStore::directory() const {
    std::lock_guard lock(mutex_);
    return directory_;
}

void FleetStore::enqueue(Job job) {
    {
        std::unique_lock lock(mutex_);
        if (finished_) return;
        // A Redis that answers, but too slowly for the work coming in, costs bounded memory.
        if (queue_.size() >= max_queued) {
            lock.unlock();
            if (job.done) job.done(nullptr);
            return;
        }
        queue_.push_back(std::move(job));
    }
    wake_.notify_all();  // the subscriber waits on the same condition
}

void FleetStore::request_lease(const std::string& username, std::string member, std::uint32_t limit,
                               std::function<void(LeaseAnswer)> done) {
    enqueue(Job{{"EVALSHA", acquire_.sha, "1", key("lease:" + username), std::to_string(limit),
                 std::move(member), std::to_string(fleet_.lease_seconds * 1000)},
                [this, done = std::move(done)](const redisReply* r) {
                    if (r == nullptr || r->type != REDIS_REPLY_INTEGER) {
                        // Redis refusing (out of memory, a read-only replica): once a run.
                        if (r != nullptr && !refusal_logged_.exchange(true)) {
                            spdlog::warn("fleet: Redis refused a lease request: {}", text_of(r));
                        }
                        done(LeaseAnswer::failed);
                        return;
                    }
                    refusal_logged_ = false;
                    done(r->integer == 1 ? LeaseAnswer::granted : LeaseAnswer::quota_full);
                }});
}

void FleetStore::keep_lease(const std::string& username, std::string member, bool registered) {
    {
        std::lock_guard lock(mutex_);
        leases_[member] = username;
    }
    // A lease admitted without the store (fleet.on_store_failure: local, or a late answer) is
    // registered now; one the store granted is only renewed from here on.
    if (registered) return;
    enqueue(Job{{"EVALSHA", renew_.sha, "1", key("lease:" + username),
                 std::to_string(fleet_.lease_seconds * 1000), std::move(member)},
                {}});
}

void FleetStore::drop_lease(const std::string& username, std::string member) {
    {
        std::lock_guard lock(mutex_);
        leases_.erase(member);
    }
    enqueue(Job{{"ZREM", key("lease:" + username), std::move(member)}, {}});
}

void FleetStore::publish(std::string message) {
    enqueue(Job{{"PUBLISH", key("control"), std::move(message)}, {}});
}

void FleetStore::put_revocation(std::string user, std::int64_t until, std::int64_t decided) {
    enqueue(Job{{"HSET", key("revocations"), std::move(user),
                 std::to_string(until) + ' ' + std::to_string(decided)},
                {}});
}

void FleetStore::put_sessions(std::string snapshot) {
    enqueue(Job{{"SET", key("sessions:" + fleet_.node_id), std::move(snapshot), "PX",
                 std::to_string(std::chrono::milliseconds(registry_lifetime).count())},
                {}});
}

void FleetStore::read_sessions(std::function<void(std::optional<Snapshots>)> done) {
    enqueue(Job{{"EVALSHA", sessions_.sha, "1", key("nodes"), key("sessions:")},
                [done = std::move(done)](const redisReply* r) {
                    if (r == nullptr || r->type != REDIS_REPLY_ARRAY) {
                        done(std::nullopt);
                        return;
                    }
                    Snapshots out;
                    for (std::size_t i = 0; i + 1 < r->elements; i += 2) {
                        if (r->element[i + 1]->type != REDIS_REPLY_STRING) continue;
                        out.emplace_back(text_of(r->element[i]), text_of(r->element[i + 1]));
                    }
                    done(std::move(out));
                }});
}

void FleetStore::append_usage(const FieldList& fields) {
    if (fleet_.usage_stream.empty()) return;
    std::vector<std::string> args{
        "XADD", fleet_.usage_stream, "MAXLEN", "~", std::to_string(fleet_.usage_stream_max), "*"};
    for (const auto& [name, value] : fields) {
        args.push_back(name);
        args.push_back(value);
    }
    enqueue(Job{std::move(args), {}});
}

bool FleetStore::run_pipelined(redisContext* c, std::deque<Job>& jobs) {
    // One round trip for the whole batch: every command is written, then every reply read.
    while (!jobs.empty()) {
        const std::size_t n = std::min(jobs.size(), max_pipelined);
        for (std::size_t i = 0; i < n; ++i) {
            const auto& args = jobs[i].command;
            std::vector<const char*> argv;
            std::vector<std::size_t> lengths;
            for (const auto& a : args) {
                argv.push_back(a.data());
                lengths.push_back(a.size());
            }
            redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data());
        }
        for (std::size_t i = 0; i < n; ++i) {
            void* raw = nullptr;
            if (redisGetReply(c, &raw) != REDIS_OK) {
                for (auto& job : jobs) {
                    if (job.done) job.done(nullptr);
                }
                jobs.clear();
                return false;
            }
            const Reply reply(static_cast<redisReply*>(raw));
            if (is_error(reply) && text_of(reply.get()).rfind("NOSCRIPT", 0) == 0) {
                scripts_lost_ = true;  // SCRIPT FLUSH or a new Redis: loaded again at once
            }
            if (jobs.front().done) jobs.front().done(reply.get());
            jobs.pop_front();
        }
    }
    return true;
}

redisContext* FleetStore::connect(bool subscriber, std::string& error) const {
    const auto& r = *fleet_.redis;
    redisContext* c = redisConnectWithTimeout(r.host.c_str(), r.port, to_timeval(connect_timeout));
    if (c == nullptr || c->err != 0) {
        error = c == nullptr ? "out of memory" : c->errstr;
        if (c != nullptr) redisFree(c);
        return nullptr;
    }
    redisEnableKeepAlive(c);
    redisSetTimeout(c, to_timeval(command_timeout));
    auto fail = [&](std::string why) -> redisContext* {
        error = std::move(why);
        redisFree(c);
        return nullptr;
    };
    if (!r.password.empty()) {
        std::vector<std::string> args{"AUTH"};
        if (!r.username.empty()) args.push_back(r.username);
        args.push_back(r.password);
        const Reply reply = command(c, args);
        if (!reply) return fail(c->errstr);
        if (is_error(reply)) return fail("AUTH refused: " + text_of(reply.get()));
    }
    if (r.db != 0 && !subscriber) {
        const Reply reply = command(c, {"SELECT", std::to_string(r.db)});
        if (!reply) return fail(c->errstr);
        if (is_error(reply)) return fail("SELECT refused: " + text_of(reply.get()));
    }
    return c;
}

void FleetStore::went_down(const std::string& why) {
    const bool was_up = up_.exchange(false);
    std::lock_guard lock(mutex_);
    if (episode_logged_) return;
    episode_logged_ = true;
    down_since_ = std::chrono::steady_clock::now();
    ++counters_.store_failures;
    spdlog::warn(
        "fleet: Redis at {} {}: {}; relaying goes on, Allocates {} until it answers (retrying "
        "with backoff)",
        fleet_.redis_url, was_up ? "stopped answering" : "is unreachable", why,
        fleet_.on_store_failure == config::StoreFailure::local ? "use this node's quotas alone"
                                                               : "get 508");
}

void FleetStore::came_up(std::size_t leases) {
    up_.store(true);
    std::lock_guard lock(mutex_);
    if (!episode_logged_) {
        spdlog::info("fleet: node {} joined through Redis at {}", fleet_.node_id, fleet_.redis_url);
        return;
    }
    episode_logged_ = false;
    const auto down = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - down_since_);
    spdlog::info("fleet: Redis at {} answers again after {} ms; {} lease(s) registered again",
                 fleet_.redis_url, down.count(), leases);
}

bool FleetStore::wait_backoff(std::chrono::milliseconds& backoff) {
    std::unique_lock lock(mutex_);
    // Jobs that need the store fail now rather than wait for it.
    while (!queue_.empty()) {
        Job job = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        if (job.done) job.done(nullptr);
        lock.lock();
    }
    wake_.wait_for(lock, backoff, [this] { return stopping_ || !queue_.empty(); });
    backoff =
        std::min(backoff * 2, std::chrono::duration_cast<std::chrono::milliseconds>(backoff_last));
    return !stopping_;
}

bool FleetStore::renew_leases(redisContext* c, const std::map<std::string, std::string>& leases) {
    std::deque<Job> batch;
    std::vector<std::string> keys;
    std::vector<std::string> members;
    auto add = [&] {
        std::vector<std::string> args{"EVALSHA", renew_.sha, std::to_string(keys.size())};
        args.insert(args.end(), keys.begin(), keys.end());
        args.push_back(std::to_string(fleet_.lease_seconds * 1000));
        args.insert(args.end(), members.begin(), members.end());
        batch.push_back(Job{std::move(args), {}});
        keys.clear();
        members.clear();
    };
    for (const auto& [member, username] : leases) {
        keys.push_back(key("lease:" + username));
        members.push_back(member);
        if (keys.size() == renew_batch) add();
    }
    if (!keys.empty()) add();
    return run_pipelined(c, batch);
}

bool FleetStore::load_scripts(redisContext* c) {
    for (const Script* script : {&acquire_, &renew_, &heartbeat_, &sessions_}) {
        const Reply r = command(c, {"SCRIPT", "LOAD", script->text});
        if (!r) return false;
        if (text_of(r.get()) != script->sha) {
            spdlog::warn("fleet: Redis refused a script: {}", text_of(r.get()));
            return false;
        }
    }
    scripts_lost_ = false;
    return true;
}

namespace {

// P"revocations" as HGETALL returns it; values that are not numbers are skipped, not trusted.
FleetStore::Revocations revocations_of(const redisReply* r) {
    FleetStore::Revocations list;
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return list;
    for (std::size_t i = 0; i + 1 < r->elements; i += 2) {
        // "<until> <decided>"
        const std::string value = text_of(r->element[i + 1]);
        FleetStore::Revocation entry{text_of(r->element[i]), 0, 0};
        const char* const last = value.data() + value.size();
        const auto [space, ec] = std::from_chars(value.data(), last, entry.until);
        if (ec != std::errc() || entry.until < 0) continue;
        if (space != last) {
            if (*space != ' ') continue;
            const auto [end, ec2] = std::from_chars(space + 1, last, entry.decided);
            if (ec2 != std::errc() || end != last) continue;
        }
        list.push_back(std::move(entry));
    }
    return list;
}

}  // namespace

bool FleetStore::load_revocations(redisContext* c) {
    const Reply r = command(c, {"HGETALL", key("revocations")});
    if (!r) return false;
    if (revocations_ && r->type == REDIS_REPLY_ARRAY) revocations_(revocations_of(r.get()), true);
    return true;
}

void FleetStore::reload_revocations() {
    enqueue(Job{{"HGETALL", key("revocations")}, [this](const redisReply* r) {
                    if (revocations_ && r != nullptr && r->type == REDIS_REPLY_ARRAY) {
                        revocations_(revocations_of(r), false);
                    }
                }});
}

bool FleetStore::heartbeat(redisContext* c) {
    FleetNode self = self_ ? self_() : FleetNode{};
    self.id = fleet_.node_id;
    own_allocations_.store(self.allocations, std::memory_order_relaxed);
    std::vector<std::string> args{
        "EVALSHA",
        heartbeat_.sha,
        "2",
        key("node:" + fleet_.node_id),
        key("nodes"),
        fleet_.node_id,
        std::to_string(std::chrono::milliseconds(registry_lifetime).count())};
    for (auto& [name, value] : node_fields(self)) {
        args.push_back(name);
        args.push_back(value);
    }
    const Reply beat = command(c, args);
    if (!beat) return false;
    if (is_error(beat)) spdlog::warn("fleet: heartbeat refused: {}", text_of(beat.get()));

    // The registry: every live node's hash, in one round trip after the id list.
    const Reply ids = command(c, {"ZRANGE", key("nodes"), "0", "-1"});
    if (!ids) return false;
    std::vector<FleetNode> nodes;
    if (ids->type == REDIS_REPLY_ARRAY) {
        for (std::size_t i = 0; i < ids->elements; ++i) {
            const std::string node_key = key("node:" + text_of(ids->element[i]));
            redisAppendCommand(c, "HGETALL %b", node_key.data(), node_key.size());
        }
        for (std::size_t i = 0; i < ids->elements; ++i) {
            void* raw = nullptr;
            if (redisGetReply(c, &raw) != REDIS_OK) return false;
            const Reply hash(static_cast<redisReply*>(raw));
            if (hash->type != REDIS_REPLY_ARRAY || hash->elements == 0) continue;
            FieldList fields;
            for (std::size_t f = 0; f + 1 < hash->elements; f += 2) {
                fields.emplace_back(text_of(hash->element[f]), text_of(hash->element[f + 1]));
            }
            if (auto node = node_from_fields(fields)) nodes.push_back(std::move(*node));
        }
    }
    auto directory = std::make_shared<const FleetDirectory>(std::move(nodes), fleet_.node_id);
    std::lock_guard lock(mutex_);
    directory_ = std::move(directory);
    return true;
}

void FleetStore::command_loop() {
    redisContext* c = nullptr;
    auto backoff = std::chrono::duration_cast<std::chrono::milliseconds>(backoff_first);
    auto next_beat = std::chrono::steady_clock::now();
    auto next_renewal = next_beat;
    const auto renew_every =
        std::chrono::seconds(std::max<std::uint32_t>(1, fleet_.lease_seconds / 3));
    for (;;) {
        if (c == nullptr) {
            std::string error;
            c = connect(false, error);
            if (c == nullptr) {
                went_down(error);
                if (!wait_backoff(backoff)) break;
                continue;
            }
            // Back: every lease this node holds is registered again (also those admitted
            // while the store was away), then the revocations issued meanwhile are applied.
            std::map<std::string, std::string> held;
            {
                std::lock_guard lock(mutex_);
                held = leases_;
            }
            if (!load_scripts(c) || !renew_leases(c, held) || !load_revocations(c) ||
                !heartbeat(c)) {
                redisFree(c);
                c = nullptr;
                went_down("the first commands after connecting failed");
                if (!wait_backoff(backoff)) break;
                continue;
            }
            came_up(held.size());
            backoff = std::chrono::duration_cast<std::chrono::milliseconds>(backoff_first);
            next_beat = std::chrono::steady_clock::now() + heartbeat_every;
            next_renewal = std::chrono::steady_clock::now() + renew_every;
        }
        std::deque<Job> jobs;
        {
            std::unique_lock lock(mutex_);
            wake_.wait_until(lock, next_beat, [this] { return stopping_ || !queue_.empty(); });
            if (stopping_) break;
            jobs.swap(queue_);
        }
        bool ok = (!scripts_lost_ || load_scripts(c)) && run_pipelined(c, jobs);
        // Jobs a failed script reload left unsent are answered too (run_pipelined answers its own).
        for (auto& job : jobs) {
            if (job.done) job.done(nullptr);
        }
        const auto now = std::chrono::steady_clock::now();
        if (ok && now >= next_beat) {
            ok = heartbeat(c);
            next_beat = now + heartbeat_every;
        }
        if (ok && now >= next_renewal) {
            std::map<std::string, std::string> held;
            {
                std::lock_guard lock(mutex_);
                held = leases_;
            }
            ok = renew_leases(c, held);
            next_renewal = now + renew_every;
        }
        if (ok) {
            up_.store(true, std::memory_order_relaxed);  // also after a slow answer
        } else {
            went_down(c->errstr[0] != '\0' ? c->errstr : "no answer");
            redisFree(c);
            c = nullptr;
        }
    }
    if (c != nullptr) {
        // A clean stop: the leases the workers gave back as they closed, and this node out of
        // the registry, so no 300 points at it (a killed node lapses in its lifetimes instead).
        std::deque<Job> left;
        {
            std::lock_guard lock(mutex_);
            left.swap(queue_);
        }
        if (run_pipelined(c, left)) {
            command(c, {"DEL", key("node:" + fleet_.node_id), key("sessions:" + fleet_.node_id)});
            command(c, {"ZREM", key("nodes"), fleet_.node_id});
        }
        redisFree(c);
    }
    up_.store(false);
}

void FleetStore::subscriber_loop() {
    auto backoff = std::chrono::duration_cast<std::chrono::milliseconds>(backoff_first);
    for (;;) {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) return;
        }
        std::string error;
        redisContext* c = connect(true, error);
        if (c != nullptr) {
            const Reply subscribed = command(c, {"SUBSCRIBE", key("control")});
            if (subscribed && !is_error(subscribed)) {
                // From here a read waits as long as the channel is quiet.
                redisSetTimeout(c, timeval{0, 0});
                {
                    std::lock_guard lock(mutex_);
                    if (stopping_) {
                        redisFree(c);
                        return;
                    }
                    subscriber_fd_ = c->fd;
                }
                backoff = std::chrono::duration_cast<std::chrono::milliseconds>(backoff_first);
                // What was published while this thread was not listening is lost; the
                // revocations among it are in the store.
                reload_revocations();
                for (;;) {
                    void* raw = nullptr;
                    if (redisGetReply(c, &raw) != REDIS_OK) break;
                    const Reply message(static_cast<redisReply*>(raw));
                    if (message->type == REDIS_REPLY_ARRAY && message->elements == 3 &&
                        text_of(message->element[0]) == "message" && control_) {
                        control_(text_of(message->element[2]));
                    }
                }
                std::lock_guard lock(mutex_);
                subscriber_fd_ = -1;
            }
            redisFree(c);
        }
        std::unique_lock lock(mutex_);
        wake_.wait_for(lock, backoff, [this] { return stopping_; });
        if (stopping_) return;
        backoff = std::min(backoff * 2,
                           std::chrono::duration_cast<std::chrono::milliseconds>(backoff_last));
    }
}

}  // namespace tern::server
