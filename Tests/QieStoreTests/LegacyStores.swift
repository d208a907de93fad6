import Foundation
import GRDB
import QieTestSupport

/// Stores as an earlier qie left them (before money was kept as
/// micro-dollars and states took the money model's names), written with the
/// earlier schema by hand: SQLite through GRDB, PostgreSQL through psql.
enum LegacyStores {
    typealias Row = (state: String, requestID: String?, resultURLs: String?, estimated: String?, reported: String?)

    private static func literal(_ text: String?) -> String {
        text.map { "'" + $0.replacingOccurrences(of: "'", with: "''") + "'" } ?? "NULL"
    }

    private static func values(_ rows: [Row], scope: String?) -> String {
        rows.enumerated().map { index, row in
            let scoped = scope.map { literal($0) + ", " } ?? ""
            return """
                (\(scoped)'key-\(index)', '/in/\(index).jpg', 'ab', 1, 1.5, 0, 'runpod-qwen-image-edit-2511', 'p', '{}', \
                '\(row.state)', \(literal(row.requestID)), \(literal(row.resultURLs)), 1, \(literal(row.estimated)), \
                \(literal(row.reported)), 1, 1)
                """
        }.joined(separator: ",\n")
    }

    /// A ledger at migration v4 in `folder`, holding `rows`.
    static func sqlite(folder: String, rows: [Row]) throws {
        let sql = """
            CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
            INSERT INTO grdb_migrations VALUES ('v1'), ('v2'), ('v3'), ('v4');
            CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, arguments TEXT NOT NULL, directory TEXT NOT NULL,
                startedAt DOUBLE NOT NULL, configuration TEXT, configurationVersion INTEGER);
            CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, inputPath TEXT NOT NULL,
                inputSHA256 TEXT NOT NULL, inputSize INTEGER NOT NULL, inputModified DOUBLE NOT NULL, copy INTEGER NOT NULL,
                endpoint TEXT NOT NULL, prompt TEXT NOT NULL, options TEXT NOT NULL, state TEXT NOT NULL, requestID TEXT,
                resultURLs TEXT, attempts INTEGER NOT NULL, outputs TEXT, estimatedCost TEXT, reportedCost TEXT, error TEXT,
                createdAt DOUBLE NOT NULL, updatedAt DOUBLE NOT NULL, polls INTEGER NOT NULL DEFAULT 0, worker TEXT,
                leaseUntil DOUBLE);
            CREATE INDEX jobs_on_state ON jobs(state);
            CREATE INDEX jobs_by_input ON jobs(inputPath, inputSize, inputModified);
            INSERT INTO jobs (key, inputPath, inputSHA256, inputSize, inputModified, copy, endpoint, prompt, options, state,
                requestID, resultURLs, attempts, estimatedCost, reportedCost, createdAt, updatedAt) VALUES
            \(values(rows, scope: nil));
            """
        let database = try DatabaseQueue(path: (folder as NSString).appendingPathComponent(".qie-ledger.sqlite"))
        try database.write { db in try db.execute(sql: sql) }
    }

    /// The run tables at migration v1 in the database at `url`, holding `rows` under `scope`.
    static func postgres(url: String, scope: String, rows: [Row]) throws {
        try PostgresServer.psql(
            url,
            """
            CREATE TABLE qie_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
            INSERT INTO qie_migrations (name) VALUES ('runs.v1');
            CREATE TABLE qie_runs (id bigserial PRIMARY KEY, scope text NOT NULL, arguments text NOT NULL, directory text NOT NULL,
                started_at double precision NOT NULL, configuration text, configuration_version integer);
            CREATE TABLE qie_jobs (id bigserial PRIMARY KEY, scope text NOT NULL, key text NOT NULL, input_path text NOT NULL,
                input_sha256 text NOT NULL, input_size bigint NOT NULL, input_modified double precision NOT NULL,
                copy integer NOT NULL, endpoint text NOT NULL, prompt text NOT NULL, options text NOT NULL,
                state text NOT NULL, request_id text, result_urls text, attempts integer NOT NULL DEFAULT 0,
                polls integer NOT NULL DEFAULT 0, outputs text, estimated_cost text, reported_cost text, error text,
                created_at double precision NOT NULL, updated_at double precision NOT NULL,
                worker text, lease_until timestamptz, UNIQUE (scope, key));
            INSERT INTO qie_jobs (scope, key, input_path, input_sha256, input_size, input_modified, copy, endpoint, prompt,
                options, state, request_id, result_urls, attempts, estimated_cost, reported_cost, created_at, updated_at) VALUES
            \(values(rows, scope: scope));
            """)
    }
}
