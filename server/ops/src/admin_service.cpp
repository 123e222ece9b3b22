#include "tern/server/ops/admin_service.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "tern/auth/revocation_list.hpp"
#include "tern/server/request/fleet_messages.hpp"

namespace tern::server {

namespace asio = boost::asio;
using allocation::TimePoint;

namespace {

std::int64_t unix_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool belongs_to(std::string_view username, std::string_view user) {
    return username == user || auth::user_of(username) == user;
}

// Asks every worker for a T and hands the answers, in worker order, to `finish` on `control`.
template <class T, class Ask, class Finish>
void gather(asio::io_context& control, const std::vector<Worker*>& workers, Ask ask,
            Finish finish) {
    struct Gathered {
        std::vector<T> answers;
        std::size_t remaining;
        Finish finish;
    };
    auto state = std::make_shared<Gathered>(
        Gathered{std::vector<T>(workers.size()), workers.size(), std::move(finish)});
    if (workers.empty()) {
        state->finish(std::move(state->answers));
        return;
    }
    for (std::size_t i = 0; i < workers.size(); ++i) {
        ask(*workers[i], [&control, state, i](T answer) {
            asio::post(control, [state, i, answer = std::move(answer)]() mutable {
                state->answers[i] = std::move(answer);
                if (--state->remaining == 0) state->finish(std::move(state->answers));
            });
        });
    }
}

}  // namespace

AdminService::AdminService(asio::io_context& control, std::vector<Worker*> workers,
                           RevocationStore& revocations, const config::Config& config)
    : control_(control), workers_(std::move(workers)), revocations_(revocations) {
    configure(config);
}

void AdminService::configure(const config::Config& config) {
    token_ = config.admin.token;
    realm_ = config.realm;
}

std::function<void(HttpAnswer)> AdminService::counted(std::function<void(HttpAnswer)> reply) {
    return [this, reply = std::move(reply)](HttpAnswer answer) {
        ++requests_[static_cast<std::size_t>(outcome_of(answer.status))];
        reply(std::move(answer));
    };
}

void AdminService::handle(AdminRequest request, std::function<void(HttpAnswer)> reply) {
    auto done = counted(std::move(reply));
    const auto now = std::chrono::steady_clock::now();
    if (limiter_.blocked(request.source, now)) {
        done(json_error(429, "too many wrong tokens from this address; try again in a minute"));
        return;
    }
    if (!bearer_matches(request.authorization, token_)) {
        limiter_.failed(request.source, now);
        spdlog::warn("admin API: wrong or missing token from {}", request.source);
        done(json_error(401, "send Authorization: Bearer <the token in admin.token_file>"));
        return;
    }
    auto parsed = parse_admin_request(request.method, request.target, request.body);
    if (auto* answer = std::get_if<HttpAnswer>(&parsed)) {
        done(std::move(*answer));
        return;
    }
    run(std::get<AdminCommand>(parsed), std::move(done));
}

void AdminService::run(const AdminCommand& command, std::function<void(HttpAnswer)> reply) {
    using Kind = AdminCommand::Kind;
    switch (command.kind) {
        case Kind::list_sessions:
            list_sessions(command, std::move(reply));
            return;
        case Kind::list_revocations:
            reply(revocations_json());
            return;
        case Kind::kill_session:
            kill_session(command, std::move(reply));
            return;
        case Kind::kill_user:
            if (fleet_ != nullptr) {
                fleet_->publish(encode_control(
                    {ControlCommand::Op::kill_user, node_id(), command.user, 0, 0, {}, {}}));
            }
            end_user(command.user, allocation::EndReason::killed,
                     [user = command.user, reply = std::move(reply)](std::size_t ended) {
                         spdlog::info("admin API: {} session(s) of {} killed", ended, user);
                         reply(json_answer(200, fmt::format(R"({{"user": {}, "killed": {}}})",
                                                            json_quoted(user), ended)));
                     });
            return;
        case Kind::revoke:
            revoke(command, std::move(reply));
            return;
        case Kind::unrevoke:
            unrevoke(command, reply);
            return;
    }
}

void AdminService::list_sessions(const AdminCommand& command,
                                 std::function<void(HttpAnswer)> reply) {
    using Answer = std::pair<std::vector<allocation::AllocationRecord>, TimePoint>;
    gather<Answer>(
        control_, workers_,
        [](Worker& w, std::function<void(Answer)> done) {
            w.list_sessions([done = std::move(done)](auto records, TimePoint now) {
                done(Answer{std::move(records), now});
            });
        },
        [this, command, reply = std::move(reply)](const std::vector<Answer>& answers) mutable {
            const WallClock clock{std::chrono::steady_clock::now(),
                                  std::chrono::system_clock::now()};
            const std::string node = node_id();
            auto body = std::make_shared<std::string>("{\"sessions\": [");
            auto count = std::make_shared<std::size_t>(0);
            auto wanted = [command](std::string_view user, std::string_view client_text,
                                    std::string_view client_ip) {
                if (!command.user.empty() && !belongs_to(user, command.user)) return false;
                return command.client.empty() || command.client == client_ip ||
                       command.client == client_text;
            };
            for (const auto& [records, now] : answers) {
                for (const auto& r : records) {
                    const auto client = r.tuple.client.unmapped();
                    if (!wanted(r.username, client.to_string(), client.ip_string())) continue;
                    *body += (*count)++ == 0 ? "\n  " : ",\n  ";
                    *body += allocation_json(r, realm_, clock, std::nullopt, node);
                }
            }
            auto finish = [body, count](std::function<void(HttpAnswer)>& done,
                                        std::string_view error) {
                *body += fmt::format("\n], \"count\": {}", *count);
                if (!error.empty()) *body += ", \"error\": " + json_quoted(error);
                done(json_answer(200, std::move(*body) + "}"));
            };
            if (fleet_ == nullptr) {
                finish(reply, {});
                return;
            }
            // The other nodes' sessions, from their last snapshots (at most a second old).
            fleet_->read_sessions([this, node, body, count, wanted, finish,
                                   reply = std::move(reply)](
                                      std::optional<FleetStore::Snapshots> snapshots) mutable {
                asio::post(control_, [node, body, count, wanted, finish, reply = std::move(reply),
                                      snapshots = std::move(snapshots)]() mutable {
                    if (!snapshots) {
                        finish(reply, "the fleet store did not answer: this node's sessions only");
                        return;
                    }
                    for (const auto& [other, snapshot] : *snapshots) {
                        if (other == node) continue;
                        std::string_view rest = snapshot;
                        while (!rest.empty()) {
                            const auto newline = rest.find('\n');
                            const auto line = parse_session_line(rest.substr(0, newline));
                            rest = newline == std::string_view::npos ? std::string_view()
                                                                     : rest.substr(newline + 1);
                            if (!line) continue;
                            const auto colon = line->client.rfind(':');
                            std::string_view ip = line->client.substr(0, colon);
                            if (ip.size() >= 2 && ip.front() == '[')
                                ip = ip.substr(1, ip.size() - 2);
                            if (!wanted(line->user, line->client, ip)) continue;
                            *body += (*count)++ == 0 ? "\n  " : ",\n  ";
                            *body += line->json;
                        }
                    }
                    finish(reply, {});
                });
            });
        });
}

void AdminService::kill_session(const AdminCommand& command,
                                std::function<void(HttpAnswer)> reply) {
    const unsigned worker = allocation::worker_of_allocation(command.session);
    std::string id = session_id_text(command.session);
    const std::string self = node_id();
    if (!command.node.empty() && command.node != self) {
        // Another node's session: its node ends it when the message arrives.
        if (fleet_ == nullptr) {
            reply(json_error(404, "no such session: " + id + "@" + command.node +
                                      " (this node is in no fleet)"));
            return;
        }
        fleet_->publish(
            encode_control({ControlCommand::Op::kill, self, {}, 0, 0, command.node, id}));
        spdlog::info("admin API: kill of session {}@{} sent to the fleet", id, command.node);
        reply(json_answer(202, "{\"killing\": " + json_quoted(id + "@" + command.node) + "}"));
        return;
    }
    if (!self.empty()) id += "@" + self;
    if (worker >= workers_.size()) {
        reply(json_error(404, "no such session: " + id));
        return;
    }
    workers_[worker]->end_session(
        command.session, [this, id, reply = std::move(reply)](bool ended) mutable {
            asio::post(control_, [id, ended, reply = std::move(reply)] {
                if (!ended) {
                    reply(json_error(404, "no such session: " + id));
                    return;
                }
                spdlog::info("admin API: session {} killed", id);
                reply(json_answer(200, "{\"killed\": " + json_quoted(id) + "}"));
            });
        });
}

void AdminService::publish_sessions() {
    if (fleet_ == nullptr) return;
    using Answer = std::vector<allocation::AllocationRecord>;
    gather<Answer>(
        control_, workers_,
        [](Worker& w, std::function<void(Answer)> done) {
            w.list_sessions(
                [done = std::move(done)](auto records, TimePoint) { done(std::move(records)); });
        },
        [this](const std::vector<Answer>& answers) {
            const WallClock clock{std::chrono::steady_clock::now(),
                                  std::chrono::system_clock::now()};
            const std::string node = node_id();
            std::string snapshot;
            for (const auto& records : answers) {
                for (const auto& r : records) {
                    if (!snapshot.empty()) snapshot += '\n';
                    snapshot +=
                        encode_session_line(r.username, r.tuple.client.unmapped().to_string(),
                                            allocation_json(r, realm_, clock, std::nullopt, node));
                }
            }
            fleet_->put_sessions(std::move(snapshot));
        });
}

void AdminService::apply_revocation(const std::string& user, std::int64_t until) {
    const auto list = revocations_.revoke(user, until, unix_now());
    if (const std::string saved = revocations_.save(); !saved.empty()) {
        spdlog::error("fleet: revocation of {} applies until restart: {}", user, saved);
    }
    for (auto* w : workers_) w->set_revocations(list);
    end_user(user, allocation::EndReason::revoked, [user](std::size_t ended) {
        spdlog::info("fleet: {} revoked by another node; {} session(s) ended here", user, ended);
    });
}

void AdminService::apply_lift(const std::string& user) {
    bool was_revoked = false;
    const auto list = revocations_.lift(user, was_revoked);
    if (!was_revoked) return;
    if (const std::string saved = revocations_.save(); !saved.empty()) {
        spdlog::error("fleet: lifting the revocation of {} applies until restart: {}", user, saved);
    }
    for (auto* w : workers_) w->set_revocations(list);
    spdlog::info("fleet: revocation of {} lifted by another node", user);
}

void AdminService::apply_published(std::string message) {
    asio::post(control_, [this, message = std::move(message)] {
        const auto command = parse_control(message);
        if (!command) {
            spdlog::warn("fleet: an unreadable control message was ignored ({} bytes)",
                         message.size());
            return;
        }
        if (command->from == node_id()) return;  // applied here before it was published
        switch (command->op) {
            case ControlCommand::Op::revoke:
            case ControlCommand::Op::unrevoke:
                take_decision(command->user,
                              command->op == ControlCommand::Op::revoke ? command->until : 0,
                              command->decided);
                return;
            case ControlCommand::Op::kill_user:
                end_user(command->user, allocation::EndReason::killed,
                         [user = command->user](std::size_t ended) {
                             spdlog::info("fleet: {} session(s) of {} killed by another node",
                                          ended, user);
                         });
                return;
            case ControlCommand::Op::kill: {
                if (command->node != node_id()) return;
                const auto id = parse_session_id(command->session);
                if (!id) return;
                const unsigned worker = allocation::worker_of_allocation(*id);
                if (worker >= workers_.size()) return;
                workers_[worker]->end_session(*id, [session = command->session](bool ended) {
                    if (ended) spdlog::info("fleet: session {} killed by another node", session);
                });
                return;
            }
        }
    });
}

void AdminService::take_decision(const std::string& user, std::int64_t until,
                                 std::int64_t decided) {
    const auto known = decided_.find(user);
    if (known != decided_.end() && known->second > decided) return;  // ours is newer
    decided_[user] = decided;
    const bool revoked_here = revocations_.current()->until(user).value_or(0) > unix_now();
    if (until > unix_now()) {
        if (revocations_.current()->until(user).value_or(0) != until) {
            apply_revocation(user, until);
        }
    } else if (revoked_here) {
        apply_lift(user);
    }
}

void AdminService::merge_revocations(FleetStore::Revocations revocations, bool send_ours) {
    asio::post(control_, [this, revocations = std::move(revocations), send_ours] {
        const auto now = unix_now();
        const std::string self = node_id();
        std::set<std::string, std::less<>> theirs;
        std::size_t sent = 0;
        for (const auto& r : revocations) {
            theirs.insert(r.user);
            const auto known = decided_.find(r.user);
            if (known == decided_.end() || known->second <= r.decided) {
                take_decision(r.user, r.until, r.decided);
            } else if (send_ours) {
                // Decided here after the store's entry, while it was away: the fleet learns it.
                const auto until = revocations_.current()->until(r.user).value_or(0);
                const bool revoked = until > now;
                fleet_->put_revocation(r.user, revoked ? until : 0, known->second);
                fleet_->publish(encode_control(
                    {revoked ? ControlCommand::Op::revoke : ControlCommand::Op::unrevoke,
                     self,
                     r.user,
                     revoked ? until : 0,
                     known->second,
                     {},
                     {}}));
                ++sent;
            }
        }
        // Ours the store has never heard of (made while it was away, or lost by a Redis
        // without persistence) go to every node.
        if (send_ours) {
            for (const auto& [user, until] : revocations_.current()->entries()) {
                if (until <= now || theirs.contains(user)) continue;
                const auto known = decided_.find(user);
                const auto decided = known == decided_.end() ? 0 : known->second;
                fleet_->put_revocation(user, until, decided);
                fleet_->publish(encode_control(
                    {ControlCommand::Op::revoke, self, user, until, decided, {}, {}}));
                ++sent;
            }
        }
        if (sent > 0) spdlog::info("fleet: {} revocation decision(s) sent to the store", sent);
    });
}

void AdminService::end_user(const std::string& user, allocation::EndReason reason,
                            std::function<void(std::size_t)> done) {
    gather<std::size_t>(
        control_, workers_,
        [user, reason](Worker& w, std::function<void(std::size_t)> answer) {
            w.end_user(user, reason, std::move(answer));
        },
        [done = std::move(done)](const std::vector<std::size_t>& ended) {
            std::size_t sum = 0;
            for (const auto n : ended) sum += n;
            done(sum);
        });
}

void AdminService::revoke(const AdminCommand& command, std::function<void(HttpAnswer)> reply) {
    const auto now = unix_now();
    const auto until = command.until.value_or(now + default_revocation.count());
    if (until <= now) {
        reply(json_error(400, "until is not in the future"));
        return;
    }
    const auto list = revocations_.revoke(command.user, until, now);
    const std::string saved = revocations_.save();
    if (fleet_ != nullptr) {
        const auto decided = unix_now_ms();
        decided_[command.user] = decided;
        fleet_->put_revocation(command.user, until, decided);
        fleet_->publish(encode_control(
            {ControlCommand::Op::revoke, node_id(), command.user, until, decided, {}, {}}));
    }
    // Each worker applies the list before it ends the user's allocations (its queue is FIFO),
    // so no Allocate of the user slips in between.
    for (auto* w : workers_) w->set_revocations(list);
    end_user(
        command.user, allocation::EndReason::revoked,
        [user = command.user, until, saved, reply = std::move(reply)](std::size_t ended) {
            const auto until_text =
                rfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(until)));
            spdlog::info("admin API: {} revoked until {}; {} session(s) ended", user, until_text,
                         ended);
            std::string body =
                fmt::format(R"({{"user": {}, "until": {}, "until_text": {}, "ended_sessions": {})",
                            json_quoted(user), until, json_quoted(until_text), ended);
            if (!saved.empty()) {
                spdlog::error("admin API: revocation of {} applies until restart: {}", user, saved);
                body += ", \"error\": " +
                        json_quoted("revoked until ternd restarts; not saved: " + saved);
                reply(json_answer(500, body + "}"));
                return;
            }
            reply(json_answer(200, body + "}"));
        });
}

void AdminService::unrevoke(const AdminCommand& command,
                            const std::function<void(HttpAnswer)>& reply) {
    bool was_revoked = false;
    const auto list = revocations_.lift(command.user, was_revoked);
    if (!was_revoked) {
        reply(json_error(404, "not revoked: " + command.user));
        return;
    }
    const std::string saved = revocations_.save();
    for (auto* w : workers_) w->set_revocations(list);
    if (fleet_ != nullptr) {
        // A lift is kept in the store too, so a node cut off meanwhile learns it.
        const auto decided = unix_now_ms();
        decided_[command.user] = decided;
        fleet_->put_revocation(command.user, 0, decided);
        fleet_->publish(encode_control(
            {ControlCommand::Op::unrevoke, node_id(), command.user, 0, decided, {}, {}}));
    }
    spdlog::info("admin API: revocation of {} lifted", command.user);
    std::string body = "{\"user\": " + json_quoted(command.user) + ", \"lifted\": true";
    if (!saved.empty()) {
        body += ", \"error\": " + json_quoted("lifted until ternd restarts; not saved: " + saved);
        reply(json_answer(500, body + "}"));
        return;
    }
    reply(json_answer(200, body + "}"));
}

HttpAnswer AdminService::revocations_json() const {
    const auto now = unix_now();
    std::string body = "{\"revocations\": [";
    std::size_t count = 0;
    for (const auto& [user, until] : revocations_.current()->entries()) {
        if (until <= now) continue;
        body += count++ == 0 ? "\n  " : ",\n  ";
        body += fmt::format(
            R"({{"user": {}, "until": {}, "until_text": {}}})", json_quoted(user), until,
            json_quoted(
                rfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(until)))));
    }
    body += fmt::format("\n], \"count\": {}}}", count);
    return json_answer(200, std::move(body));
}

}  // namespace tern::server
