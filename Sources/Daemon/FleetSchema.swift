/// The fleet's tables and functions in PostgreSQL (docs/fleet.md), one
/// migration per version, applied under an advisory lock so that hosts
/// starting together do not race. A migration is never edited; a new
/// version appends one.
enum FleetSchema {
    /// pg_advisory_xact_lock key for migrations ("wshd").
    static let lockKey = 0x7773_6864

    static let migrations: [(version: Int, sql: String)] = [
        (
            1,
            """
            CREATE TABLE wshostd_hosts (
                id text PRIMARY KEY,
                epoch bigint NOT NULL,
                lease_until timestamptz NOT NULL,
                -- The previous epoch and its lease: its sessions stay its own until
                -- that lease has run out (another process with the same id, or this
                -- host before it fenced itself, closes its sockets by then).
                prev_epoch bigint,
                prev_lease_until timestamptz,
                joined timestamptz NOT NULL,
                renewed timestamptz NOT NULL,
                max_sessions integer NOT NULL DEFAULT 0,
                draining boolean NOT NULL DEFAULT false
            );
            -- The world's sessions (wshostd_world_append keeps them equal), their
            -- holder and epoch, how often each was claimed (fence), and an
            -- operator's pin: a pinned session's holder hands it over, the others
            -- leave it to that host, which claims it first and never hands it on
            -- for balance (a pin to a host that is not live, or drains, counts for
            -- nothing).
            CREATE TABLE wshostd_sessions (
                session text PRIMARY KEY,
                records integer NOT NULL DEFAULT 0,
                owner text,
                owner_epoch bigint,
                fence bigint NOT NULL DEFAULT 0,
                claimed timestamptz,
                pinned_to text
            );
            CREATE INDEX wshostd_sessions_owner ON wshostd_sessions (owner, owner_epoch);

            -- Users' consent decisions, shared: a session that moves keeps them. A
            -- forgotten decision stays as a row without a verdict, so that the other
            -- hosts learn it; seq orders the changes (writers take a lock, so seq
            -- order is commit order) and each host reads what is newer than what it has.
            CREATE SEQUENCE wshostd_decision_seq;
            CREATE TABLE wshostd_decisions (
                "user" text NOT NULL,
                host text NOT NULL,
                port integer NOT NULL,
                scope text NOT NULL,
                verdict text,
                reason text NOT NULL DEFAULT '',
                seq bigint NOT NULL,
                PRIMARY KEY ("user", host, port, scope)
            );
            CREATE INDEX wshostd_decisions_seq ON wshostd_decisions (seq);

            -- Consent tokens, shared: the first one generated for a user, by any
            -- host, is the user's token on every host.
            CREATE TABLE wshostd_tokens ("user" text PRIMARY KEY, token text NOT NULL);

            -- The world, shared: a log of changes that every host applies in order
            -- (seq), and the declared world last applied from the config. A change
            -- is appended only onto the version its host computed it on (SQLSTATE
            -- WS003 otherwise), so every host applies the same changes in the same
            -- order to the same world.
            CREATE TABLE wshostd_world (
                id integer PRIMARY KEY CHECK (id = 1),
                version bigint NOT NULL,
                declared text
            );
            INSERT INTO wshostd_world (id, version) VALUES (1, 0);
            CREATE TABLE wshostd_world_log (
                seq bigint PRIMARY KEY,
                changes text NOT NULL,
                declared text,
                by text NOT NULL,
                at timestamptz NOT NULL DEFAULT now()
            );

            -- Requests for a session's sockets (ws.send, ws.disconnect) asked of a
            -- host that does not hold it: the holder takes one (once, and not after
            -- its asker stopped waiting), carries it out and writes the answer back.
            -- Rows are kept a minute.
            CREATE TABLE wshostd_requests (
                id bigserial PRIMARY KEY,
                origin text NOT NULL,
                target text NOT NULL,
                request text NOT NULL,
                answer text,
                asked timestamptz NOT NULL DEFAULT now(),
                taken timestamptz
            );

            -- A host joins (again): a new epoch. What it held under the previous
            -- one stays that epoch's until its lease has run out (prev_*).
            CREATE FUNCTION wshostd_join(p_host text, p_lease interval, p_max integer) RETURNS bigint
            LANGUAGE sql AS $f$
                INSERT INTO wshostd_hosts AS h (id, epoch, lease_until, joined, renewed, max_sessions)
                VALUES (p_host, 1, now() + p_lease, now(), now(), p_max)
                ON CONFLICT (id) DO UPDATE
                    SET epoch = h.epoch + 1, lease_until = now() + p_lease, joined = now(), renewed = now(),
                        max_sessions = p_max, prev_epoch = h.epoch, prev_lease_until = h.lease_until
                RETURNING epoch
            $f$;

            -- Whether a session's owner no longer holds it. A function, not an
            -- outer join: with SELECT … FOR UPDATE SKIP LOCKED, a row another
            -- host claimed (and committed) meanwhile is re-checked at its new
            -- version, and an outer join re-checked that way comes out
            -- NULL-extended, that is "orphaned": two hosts claimed one session.
            CREATE FUNCTION wshostd_orphaned(p_owner text, p_epoch bigint) RETURNS boolean
            LANGUAGE sql STABLE AS $f$
                SELECT p_owner IS NULL OR NOT EXISTS (
                    SELECT 1 FROM wshostd_hosts h
                     WHERE h.id = p_owner
                       AND ((h.epoch = p_epoch AND h.lease_until >= now())
                            OR (h.prev_epoch = p_epoch AND h.prev_lease_until >= now())))
            $f$;

            -- The host a pin names, if it is live and takes sessions.
            CREATE FUNCTION wshostd_effective_pin(p_pin text) RETURNS text
            LANGUAGE sql STABLE AS $f$
                SELECT h.id FROM wshostd_hosts h WHERE h.id = p_pin AND h.lease_until > now() AND NOT h.draining
            $f$;

            -- Claims a locked session for a host, if it is still orphaned at
            -- the newest version of its row (checked again under the lock).
            CREATE FUNCTION wshostd_claim(p_session text, p_host text, p_epoch bigint) RETURNS boolean
            LANGUAGE plpgsql AS $f$
            BEGIN
                UPDATE wshostd_sessions s
                   SET owner = p_host, owner_epoch = p_epoch, fence = s.fence + 1, claimed = now()
                 WHERE s.session = p_session AND wshostd_orphaned(s.owner, s.owner_epoch);
                RETURN FOUND;
            END
            $f$;

            -- One round: renew the lease (on the database's clock), claim
            -- orphaned sessions up to the fair share (sessions / live hosts,
            -- rounded up; 0 while draining), the batch and the host's limit
            -- (SKIP LOCKED: hosts claiming together never wait for each
            -- other), and list what the host holds with the fair share (past
            -- it, the host hands sessions over). A host whose epoch is over
            -- gets SQLSTATE WS001.
            CREATE FUNCTION wshostd_round(p_host text, p_epoch bigint, p_lease interval, p_max integer, p_batch integer)
            RETURNS TABLE (held_session text, held_fence bigint, fair_share integer, hand_over boolean, pinned boolean)
            LANGUAGE plpgsql AS $f$
            DECLARE
                v_draining boolean;
                v_live integer;
                v_total integer;
                v_held integer;
                v_share integer := 0;
                v_room integer;
                v_session text;
            BEGIN
                UPDATE wshostd_hosts h SET lease_until = now() + p_lease, renewed = now(), max_sessions = p_max
                 WHERE h.id = p_host AND h.epoch = p_epoch
                RETURNING h.draining INTO v_draining;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'host % is no longer a member with epoch %', p_host, p_epoch
                        USING ERRCODE = 'WS001';
                END IF;
                IF NOT v_draining THEN
                    -- Sessions pinned here first, whatever the share.
                    FOR v_session IN
                        SELECT s.session FROM wshostd_sessions s
                         WHERE s.pinned_to = p_host AND wshostd_orphaned(s.owner, s.owner_epoch)
                         ORDER BY s.session
                         LIMIT p_batch
                           FOR UPDATE SKIP LOCKED
                    LOOP
                        PERFORM wshostd_claim(v_session, p_host, p_epoch);
                    END LOOP;
                    SELECT count(*) INTO v_live FROM wshostd_hosts h WHERE h.lease_until > now() AND NOT h.draining;
                    SELECT count(*) INTO v_total FROM wshostd_sessions;
                    SELECT count(*) INTO v_held FROM wshostd_sessions s
                     WHERE s.owner = p_host AND s.owner_epoch = p_epoch;
                    v_share := ceil(v_total::numeric / greatest(v_live, 1))::integer;
                    IF p_max > 0 THEN
                        v_share := least(v_share, p_max);
                    END IF;
                    v_room := least(v_share - v_held, p_batch);
                    IF v_room > 0 THEN
                        FOR v_session IN
                            SELECT s.session FROM wshostd_sessions s
                             WHERE wshostd_orphaned(s.owner, s.owner_epoch)
                               AND (s.pinned_to IS NULL OR s.pinned_to = p_host
                                    OR wshostd_effective_pin(s.pinned_to) IS NULL)
                             ORDER BY s.claimed NULLS FIRST, s.session
                             LIMIT v_room
                               FOR UPDATE SKIP LOCKED
                        LOOP
                            PERFORM wshostd_claim(v_session, p_host, p_epoch);
                        END LOOP;
                    END IF;
                END IF;
                RETURN QUERY
                    SELECT s.session, s.fence, v_share,
                           v_draining OR (s.pinned_to IS NOT NULL AND s.pinned_to <> p_host
                                          AND wshostd_effective_pin(s.pinned_to) IS NOT NULL),
                           NOT v_draining AND s.pinned_to IS NOT DISTINCT FROM p_host
                      FROM wshostd_sessions s
                     WHERE s.owner = p_host AND s.owner_epoch = p_epoch ORDER BY s.session;
            END
            $f$;

            -- Hand-overs wake the others (they claim at once, not at their next round).
            CREATE FUNCTION wshostd_release(p_host text, p_epoch bigint, p_sessions text[]) RETURNS integer
            LANGUAGE plpgsql AS $f$
            DECLARE v_count integer;
            BEGIN
                UPDATE wshostd_sessions s SET owner = NULL, owner_epoch = NULL
                 WHERE s.owner = p_host AND s.owner_epoch = p_epoch AND s.session = ANY (p_sessions);
                GET DIAGNOSTICS v_count = ROW_COUNT;
                PERFORM pg_notify('wshostd_fleet', 'released ' || p_host);
                RETURN v_count;
            END
            $f$;

            -- A host that stops gives its sessions up (its sockets are closed):
            -- the others claim them at their next round, without waiting for the lease.
            CREATE FUNCTION wshostd_leave(p_host text, p_epoch bigint) RETURNS integer
            LANGUAGE plpgsql AS $f$
            DECLARE v_count integer;
            BEGIN
                UPDATE wshostd_sessions s SET owner = NULL, owner_epoch = NULL
                 WHERE s.owner = p_host AND s.owner_epoch = p_epoch;
                GET DIAGNOSTICS v_count = ROW_COUNT;
                UPDATE wshostd_hosts h SET lease_until = now() WHERE h.id = p_host AND h.epoch = p_epoch;
                PERFORM pg_notify('wshostd_fleet', 'left ' || p_host);
                RETURN v_count;
            END
            $f$;

            -- Operators: drain a host (or not), pin a session to a host.
            CREATE FUNCTION wshostd_drain(p_host text, p_drain boolean) RETURNS boolean
            LANGUAGE plpgsql AS $f$
            BEGIN
                UPDATE wshostd_hosts h SET draining = p_drain WHERE h.id = p_host;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'no host % in the fleet', p_host USING ERRCODE = 'WS002';
                END IF;
                PERFORM pg_notify('wshostd_fleet', 'drain ' || p_host);
                RETURN p_drain;
            END
            $f$;

            CREATE FUNCTION wshostd_move(p_session text, p_host text) RETURNS text
            LANGUAGE plpgsql AS $f$
            DECLARE v_owner text;
            BEGIN
                IF wshostd_effective_pin(p_host) IS NULL THEN
                    RAISE EXCEPTION 'host % is not a live member that takes sessions', p_host USING ERRCODE = 'WS002';
                END IF;
                UPDATE wshostd_sessions s SET pinned_to = p_host WHERE s.session = p_session RETURNING s.owner INTO v_owner;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'no session % in the fleet', p_session USING ERRCODE = 'WS002';
                END IF;
                PERFORM pg_notify('wshostd_fleet', 'move ' || p_session);
                RETURN v_owner;
            END
            $f$;

            CREATE FUNCTION wshostd_decide(
                p_user text, p_host text, p_port integer, p_scope text, p_verdict text, p_reason text
            ) RETURNS bigint
            LANGUAGE plpgsql AS $f$
            DECLARE v_seq bigint;
            BEGIN
                PERFORM pg_advisory_xact_lock(\(lockKey + 1));
                v_seq := nextval('wshostd_decision_seq');
                INSERT INTO wshostd_decisions AS d ("user", host, port, scope, verdict, reason, seq)
                VALUES (p_user, p_host, p_port, p_scope, p_verdict, coalesce(p_reason, ''), v_seq)
                ON CONFLICT ("user", host, port, scope) DO UPDATE
                    SET verdict = EXCLUDED.verdict, reason = EXCLUDED.reason, seq = EXCLUDED.seq;
                PERFORM pg_notify('wshostd_fleet', 'decision');
                RETURN v_seq;
            END
            $f$;

            -- Appends changes onto version p_base; the sessions of the world
            -- after them (with their record counts) become the fleet's
            -- sessions in the same transaction.
            CREATE FUNCTION wshostd_world_append(
                p_base bigint, p_changes text, p_declared text, p_by text, p_sessions text[], p_records integer[]
            ) RETURNS bigint
            LANGUAGE plpgsql AS $f$
            DECLARE v_version bigint;
            BEGIN
                SELECT w.version INTO v_version FROM wshostd_world w WHERE w.id = 1 FOR UPDATE;
                IF v_version <> p_base THEN
                    RAISE EXCEPTION 'the world changed meanwhile (version %, this host has %)', v_version, p_base
                        USING ERRCODE = 'WS003';
                END IF;
                v_version := v_version + 1;
                INSERT INTO wshostd_world_log (seq, changes, declared, by) VALUES (v_version, p_changes, p_declared, p_by);
                UPDATE wshostd_world w SET version = v_version, declared = coalesce(p_declared, w.declared) WHERE w.id = 1;
                DELETE FROM wshostd_sessions s WHERE NOT (s.session = ANY (p_sessions));
                INSERT INTO wshostd_sessions AS s (session, records)
                SELECT * FROM unnest(p_sessions, p_records)
                ON CONFLICT (session) DO UPDATE SET records = EXCLUDED.records
                WHERE s.records IS DISTINCT FROM EXCLUDED.records;
                PERFORM pg_notify('wshostd_fleet', 'world');
                RETURN v_version;
            END
            $f$;

            CREATE FUNCTION wshostd_token(p_user text, p_token text) RETURNS text
            LANGUAGE plpgsql AS $f$
            DECLARE v_token text;
            BEGIN
                INSERT INTO wshostd_tokens ("user", token) VALUES (p_user, p_token) ON CONFLICT ("user") DO NOTHING;
                SELECT t.token INTO v_token FROM wshostd_tokens t WHERE t."user" = p_user;
                PERFORM pg_notify('wshostd_fleet', 'token');
                RETURN v_token;
            END
            $f$;

            CREATE FUNCTION wshostd_forward(p_origin text, p_session text, p_request text) RETURNS text
            LANGUAGE plpgsql AS $f$
            DECLARE
                v_target text;
                v_id bigint;
            BEGIN
                DELETE FROM wshostd_requests r WHERE r.asked < now() - interval '1 minute';
                SELECT s.owner INTO v_target FROM wshostd_sessions s
                  JOIN wshostd_hosts h ON h.id = s.owner AND h.epoch = s.owner_epoch AND h.lease_until > now()
                 WHERE s.session = p_session;
                IF v_target IS NULL THEN
                    RAISE EXCEPTION 'no host holds session % now', p_session USING ERRCODE = 'WS004';
                END IF;
                INSERT INTO wshostd_requests (origin, target, request) VALUES (p_origin, v_target, p_request)
                RETURNING id INTO v_id;
                PERFORM pg_notify('wshostd_fleet', 'request ' || v_id || ' ' || v_target);
                RETURN v_id || ' ' || v_target;
            END
            $f$;

            CREATE FUNCTION wshostd_take(p_id bigint, p_wait interval) RETURNS text
            LANGUAGE sql AS $f$
                UPDATE wshostd_requests r SET taken = now()
                 WHERE r.id = p_id AND r.taken IS NULL AND r.answer IS NULL AND r.asked > now() - p_wait
                RETURNING r.request
            $f$;

            CREATE FUNCTION wshostd_answer(p_id bigint, p_answer text) RETURNS void
            LANGUAGE plpgsql AS $f$
            DECLARE v_origin text;
            BEGIN
                UPDATE wshostd_requests r SET answer = p_answer WHERE r.id = p_id AND r.answer IS NULL
                RETURNING r.origin INTO v_origin;
                IF v_origin IS NOT NULL THEN
                    PERFORM pg_notify('wshostd_fleet', 'answer ' || p_id || ' ' || v_origin);
                END IF;
            END
            $f$;
            """
        )
    ]

    /// The script that brings a database up to date: one transaction, under
    /// the lock, each missing version applied and recorded.
    static var migrationScript: String {
        var script = """
            BEGIN;
            SELECT pg_advisory_xact_lock(\(lockKey));
            CREATE TABLE IF NOT EXISTS wshostd_schema (
                version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now());

            """
        for (version, sql) in migrations {
            script += """
                DO $migration$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM wshostd_schema WHERE version = \(version)) THEN
                EXECUTE \(dollarQuoted(sql));
                INSERT INTO wshostd_schema (version) VALUES (\(version));
                END IF;
                END $migration$;

                """
        }
        script += "COMMIT;"
        return script
    }

    private static func dollarQuoted(_ sql: String) -> String {
        "$sql$" + sql + "$sql$"
    }
}
