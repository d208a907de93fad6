import Foundation
import GRDB
import Logging
import NIOCore
import NIOFoundationCompat
import PostgresNIO
import QiePipeline
import QieStore
import Synchronization

/// One `POST /v1/images/edits` request as the gateway keeps it: who sent
/// it (the key's id, never its secret), what it asked, how it ended, what
/// it cost and where its time went. Its log line, kept.
struct RequestRecord: Sendable, Equatable {
    /// The `x-request-id` the request was answered with.
    var id: String
    /// When it came, by the gateway's clock.
    var time: Date
    /// The UTC day of `time`, `yyyy-MM-dd`: the day whose spending it counts in.
    var day: String
    /// The client key's id (`local` without keys).
    var key: String
    /// The end user the client named (`user`).
    var user: String?
    /// The model asked (`model`); nil when the default was taken.
    var modelAsked: String?
    /// The endpoint it ran on (or would have): a profile id.
    var endpoint: String?
    /// Images sent (the first and its references).
    var images: Int
    var n: Int
    /// The results' size, `WxH`.
    var size: String?
    /// The HTTP status answered (499: the client went away first).
    var status: Int
    /// What the status meant (`replayed`, `invalid_value`, ...); nil for a plain 200.
    var code: String?
    /// Billed (or kept as billed), micro-dollars; nil when nothing was or the price is unknown.
    var costMicros: Int64?
    /// The edit was made but its price is unknown (the endpoint publishes none).
    var costUnknown: Bool
    /// Money the endpoint may have billed without a usable answer, micro-dollars.
    var atRiskMicros: Int64?
    var queueSeconds: Double?
    var endpointSeconds: Double?
    /// From the request's arrival to its answer (or its stream's end).
    var seconds: Double
    /// Thumbnails of its results still kept (read back; they last as result files do).
    var thumbnails: Int = 0

    /// The record of `line` (its time measured already).
    init(_ line: RequestLog) {
        id = line.requestID
        time = line.arrived
        day = BudgetDay.key(time)
        key = line.key
        user = line.user
        modelAsked = line.modelAsked
        endpoint = line.model
        images = line.images
        n = line.n
        size = line.size
        let parts = line.outcome.split(separator: " ", maxSplits: 1)
        status = parts.first.flatMap { Int($0) } ?? 0
        code = parts.count > 1 ? String(parts[1]) : nil
        costUnknown = line.cost == "unknown"
        costMicros = MicroDollars.parse(line.cost)
        atRiskMicros = MicroDollars.parse(line.atRisk)
        queueSeconds = line.queueSeconds
        endpointSeconds = line.endpointSeconds
        seconds = line.seconds
    }

    init(
        id: String, time: Date, key: String, user: String?, modelAsked: String?, endpoint: String?, images: Int, n: Int, size: String?,
        status: Int, code: String?, costMicros: Int64?, costUnknown: Bool, atRiskMicros: Int64?, queueSeconds: Double?,
        endpointSeconds: Double?, seconds: Double, thumbnails: Int = 0
    ) {
        self.id = id
        self.time = time
        day = BudgetDay.key(time)
        self.key = key
        self.user = user
        self.modelAsked = modelAsked
        self.endpoint = endpoint
        self.images = images
        self.n = n
        self.size = size
        self.status = status
        self.code = code
        self.costMicros = costMicros
        self.costUnknown = costUnknown
        self.atRiskMicros = atRiskMicros
        self.queueSeconds = queueSeconds
        self.endpointSeconds = endpointSeconds
        self.seconds = seconds
        self.thumbnails = thumbnails
    }
}

/// A day's requests summed by key, endpoint and user together: each
/// store sums in SQL, and `SpendingTotals` groups the sums.
struct SpendingRow: Sendable, Equatable {
    var key: String
    var endpoint: String?
    var user: String?
    var requests: Int
    var costMicros: Int64
    var atRiskMicros: Int64
    /// Edits made whose price is unknown.
    var unpriced: Int
}

/// Where a store keeps the requests' records and their results'
/// thumbnails.
protocol RequestRecords: Sendable {
    /// Keeps `record`, and `thumbnails` (JPEG, one per result, in order) for
    /// `lifetime` seconds.
    func addRecord(_ record: RequestRecord, thumbnails: [Data], lifetime: TimeInterval) async throws
    /// The newest `limit` records, newest first (only `key`'s when given),
    /// each with the number of its thumbnails still kept.
    func records(key: String?, limit: Int) async throws -> [RequestRecord]
    /// Thumbnail `index` of request `id`, while it is kept.
    func thumbnail(request id: String, index: Int) async throws -> Data?
    /// `day`'s records summed by key, endpoint and user (only `key`'s when given).
    func spending(day: String, key: String?) async throws -> [SpendingRow]
    /// Deletes records older than `lifetime` seconds, and expired thumbnails.
    func sweepRecords(olderThan lifetime: TimeInterval) async throws
}

/// Thumbnails of results, as the page shows them: JPEG, at most 256
/// pixels a side, never enlarged.
enum Thumbnail {
    /// What the editor is asked to make beside each result of a request
    /// whose record is kept (`EditOptions.preview`): from the pixels it
    /// decodes anyway, so no result is decoded again for its thumbnail.
    static let preview = PreviewOptions(side: 256, encode: EncodeOptions(format: .jpeg, quality: 80))

    /// `image`'s thumbnail made from its bytes, for a result without a
    /// preview (an idempotent replay's); nil when it cannot be made (the
    /// record is kept without it).
    static func make(_ image: EditedImage) -> Data? {
        (try? ImageProcessor.verify(data: image.data, preview: preview)) ?? nil
    }
}

/// Keeps each request's record once its log line is written: thumbnails
/// are made and the row written off the request's path, so no answer waits
/// for them, and a failure to keep a record is logged, never answered.
/// Readers first wait for the records still being written (`flush`), so a
/// request answered is a request shown.
final class RequestRecorder: Sendable {
    let store: any RequestRecords
    let clock: any QieClock
    /// How long thumbnails are kept: as long as result files.
    let thumbnailLifetime: TimeInterval
    let logger: Logger
    /// Records being written, and the last one handed over: each is
    /// written after the one before it, so records keep the order their
    /// requests ended in, whatever their thumbnails took.
    private let pending = Mutex<(next: Int, tasks: [Int: Task<Void, Never>], last: Task<Void, Never>?)>((0, [:], nil))

    init(store: any RequestRecords, clock: any QieClock, thumbnailLifetime: TimeInterval, logger: Logger) {
        self.store = store
        self.clock = clock
        self.thumbnailLifetime = thumbnailLifetime
        self.logger = logger
    }

    /// Keeps `line`'s record (its time measured). A request that was not
    /// authenticated (no key id) has its log line only: nobody's request, it
    /// is not kept for anyone to read.
    /// Whether a request by `key` (its id; "-" before one is known) has
    /// its record kept.
    static func keepsRecord(ofKey key: String) -> Bool { key != "-" }

    func record(_ line: RequestLog) {
        guard Self.keepsRecord(ofKey: line.key) else { return }
        let record = RequestRecord(line)
        let results = line.results
        let (store, lifetime, logger) = (store, thumbnailLifetime, logger)
        pending.withLock { pending in
            let id = pending.next
            pending.next += 1
            let previous = pending.last
            let task = Task {
                var thumbnails: [Data] = []
                for image in results {
                    // Made beside the result as a rule; made here only for one without.
                    let made = if let preview = image.preview { preview } else { try? await ImagingRuntime.offload { Thumbnail.make(image) } }
                    guard let made else { break }
                    thumbnails.append(made)
                }
                await previous?.value
                do {
                    try await store.addRecord(record, thumbnails: thumbnails, lifetime: lifetime)
                } catch {
                    logger.warning("the request's record could not be kept", metadata: ["request": "\(record.id)", "error": "\(error)"])
                }
                _ = self.pending.withLock { $0.tasks.removeValue(forKey: id) }
            }
            pending.tasks[id] = task
            pending.last = task
        }
    }

    /// Returns once every record handed over so far is written (or failed).
    func flush() async {
        let tasks = pending.withLock { Array($0.tasks.values) }
        for task in tasks { await task.value }
    }
}

// MARK: SQLite

extension SQLiteGatewayStore {
    /// The requests' records and their thumbnails.
    static func migrateRecords(_ db: Database) throws {
        try db.create(table: "requests") { table in
            table.primaryKey("id", .text)
            table.column("time", .double).notNull().indexed()
            table.column("day", .text).notNull().indexed()
            table.column("key", .text).notNull()
            table.column("endUser", .text)
            table.column("modelAsked", .text)
            table.column("endpoint", .text)
            table.column("images", .integer).notNull()
            table.column("n", .integer).notNull()
            table.column("size", .text)
            table.column("status", .integer).notNull()
            table.column("code", .text)
            table.column("costMicros", .integer)
            table.column("costUnknown", .boolean).notNull()
            table.column("atRiskMicros", .integer)
            table.column("queueSeconds", .double)
            table.column("endpointSeconds", .double)
            table.column("seconds", .double).notNull()
        }
        try db.create(table: "request_thumbnails") { table in
            table.column("request", .text).notNull()
            table.column("position", .integer).notNull()
            table.column("bytes", .blob).notNull()
            table.column("expires", .double).notNull().indexed()
            table.primaryKey(["request", "position"])
        }
    }

    func addRecord(_ record: RequestRecord, thumbnails: [Data], lifetime: TimeInterval) async throws {
        let expires = clock.now().addingTimeInterval(lifetime).timeIntervalSince1970
        try await database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO requests (id, time, day, key, endUser, modelAsked, endpoint, images, n, size, status, code,
                        costMicros, costUnknown, atRiskMicros, queueSeconds, endpointSeconds, seconds)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    record.id, record.time.timeIntervalSince1970, record.day, record.key, record.user, record.modelAsked,
                    record.endpoint, record.images, record.n, record.size, record.status, record.code, record.costMicros,
                    record.costUnknown, record.atRiskMicros, record.queueSeconds, record.endpointSeconds, record.seconds,
                ])
            for (position, bytes) in thumbnails.enumerated() {
                try db.execute(
                    sql: "INSERT INTO request_thumbnails (request, position, bytes, expires) VALUES (?, ?, ?, ?)",
                    arguments: [record.id, position, bytes, expires])
            }
        }
    }

    func records(key: String?, limit: Int) async throws -> [RequestRecord] {
        let now = clock.now().timeIntervalSince1970
        return try await database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT r.*, (SELECT COUNT(*) FROM request_thumbnails t WHERE t.request = r.id AND t.expires > ?) AS thumbnails
                    FROM requests r WHERE (? IS NULL OR r.key = ?) ORDER BY r.time DESC, r.rowid DESC LIMIT ?
                    """, arguments: [now, key, key, limit]
            ).map { row in
                RequestRecord(
                    id: row["id"], time: Date(timeIntervalSince1970: row["time"]), key: row["key"], user: row["endUser"],
                    modelAsked: row["modelAsked"], endpoint: row["endpoint"], images: row["images"], n: row["n"], size: row["size"],
                    status: row["status"], code: row["code"], costMicros: row["costMicros"], costUnknown: row["costUnknown"],
                    atRiskMicros: row["atRiskMicros"], queueSeconds: row["queueSeconds"], endpointSeconds: row["endpointSeconds"],
                    seconds: row["seconds"], thumbnails: row["thumbnails"])
            }
        }
    }

    func thumbnail(request id: String, index: Int) async throws -> Data? {
        let now = clock.now().timeIntervalSince1970
        return try await database.read { db in
            try Data.fetchOne(
                db, sql: "SELECT bytes FROM request_thumbnails WHERE request = ? AND position = ? AND expires > ?",
                arguments: [id, index, now])
        }
    }

    func spending(day: String, key: String?) async throws -> [SpendingRow] {
        try await database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT key, endpoint, endUser, COUNT(*) AS requests, COALESCE(SUM(costMicros), 0) AS cost,
                        COALESCE(SUM(atRiskMicros), 0) AS atRisk, SUM(costUnknown) AS unpriced
                    FROM requests WHERE day = ? AND (? IS NULL OR key = ?) GROUP BY key, endpoint, endUser
                    """, arguments: [day, key, key]
            ).map { row in
                SpendingRow(
                    key: row["key"], endpoint: row["endpoint"], user: row["endUser"], requests: row["requests"], costMicros: row["cost"],
                    atRiskMicros: row["atRisk"], unpriced: row["unpriced"])
            }
        }
    }

    func sweepRecords(olderThan lifetime: TimeInterval) async throws {
        let now = clock.now().timeIntervalSince1970
        try await database.write { db in
            try db.execute(sql: "DELETE FROM requests WHERE time <= ?", arguments: [now - lifetime])
            try db.execute(
                sql: "DELETE FROM request_thumbnails WHERE expires <= ? OR request NOT IN (SELECT id FROM requests)", arguments: [now])
        }
    }
}

// MARK: PostgreSQL

extension PostgresGatewayStore {
    /// The requests' records and their thumbnails. Times are the gateway's
    /// clock's (seconds since 1970); thumbnails expire by the server's, as
    /// result files do.
    static let recordsMigration: [String] = [
        """
        CREATE TABLE qie_gateway_requests (
            id text PRIMARY KEY, at double precision NOT NULL, day text NOT NULL, key text NOT NULL, end_user text,
            model_asked text, endpoint text, images integer NOT NULL, n integer NOT NULL, size text, status integer NOT NULL,
            code text, cost_micros bigint, cost_unknown boolean NOT NULL, at_risk_micros bigint, queue_seconds double precision,
            endpoint_seconds double precision, seconds double precision NOT NULL)
        """,
        "CREATE INDEX qie_gateway_requests_at ON qie_gateway_requests (at)",
        "CREATE INDEX qie_gateway_requests_day ON qie_gateway_requests (day)",
        """
        CREATE TABLE qie_gateway_request_thumbnails (
            request text NOT NULL, position integer NOT NULL, bytes bytea NOT NULL, expires timestamptz NOT NULL,
            PRIMARY KEY (request, position))
        """,
        "CREATE INDEX qie_gateway_request_thumbnails_expiry ON qie_gateway_request_thumbnails (expires)",
    ]

    /// Seconds the store's clock is ahead of the machine's (0 for the system clock).
    private var clockSkew: Double { clock is SystemClock ? 0 : clock.now().timeIntervalSinceNow }

    func addRecord(_ record: RequestRecord, thumbnails: [Data], lifetime: TimeInterval) async throws {
        let (logger, expiresIn) = (database.logger, clockSkew + lifetime)
        try await database.transaction { connection in
            let at = record.time.timeIntervalSince1970
            let images = record.images
            let n = record.n
            let status = record.status
            try await connection.query(
                """
                INSERT INTO qie_gateway_requests (id, at, day, key, end_user, model_asked, endpoint, images, n, size, status, code,
                    cost_micros, cost_unknown, at_risk_micros, queue_seconds, endpoint_seconds, seconds)
                VALUES (\(record.id), \(at), \(record.day), \(record.key), \(record.user), \(record.modelAsked), \(record.endpoint),
                    \(images), \(n), \(record.size), \(status), \(record.code), \(record.costMicros), \(record.costUnknown),
                    \(record.atRiskMicros), \(record.queueSeconds), \(record.endpointSeconds), \(record.seconds))
                """, logger: logger)
            for (position, bytes) in thumbnails.enumerated() {
                try await connection.query(
                    """
                    INSERT INTO qie_gateway_request_thumbnails (request, position, bytes, expires)
                    VALUES (\(record.id), \(position), \(ByteBuffer(data: bytes)), now() + make_interval(secs => \(expiresIn)))
                    """, logger: logger)
            }
        }
    }

    func records(key: String?, limit: Int) async throws -> [RequestRecord] {
        let skew = clockSkew
        return try await database.rows(
            """
            SELECT r.id, r.at, r.key, r.end_user, r.model_asked, r.endpoint, r.images, r.n, r.size, r.status, r.code, r.cost_micros,
                r.cost_unknown, r.at_risk_micros, r.queue_seconds, r.endpoint_seconds, r.seconds,
                (SELECT COUNT(*) FROM qie_gateway_request_thumbnails t
                 WHERE t.request = r.id AND t.expires > now() + make_interval(secs => \(skew)))::integer
            FROM qie_gateway_requests r WHERE (\(key)::text IS NULL OR r.key = \(key)) ORDER BY r.at DESC, r.id LIMIT \(limit)
            """
        ) { row in
            let (id, at, key, user, asked, endpoint, images, n, size, status, code, costMicros, costUnknown, atRisk, queue,
                endpointSeconds, seconds, thumbnails) = try row.decode(
                    (String, Double, String, String?, String?, String?, Int, Int, String?, Int, String?, Int64?, Bool, Int64?, Double?,
                        Double?, Double, Int).self)
            return RequestRecord(
                id: id, time: Date(timeIntervalSince1970: at), key: key, user: user, modelAsked: asked, endpoint: endpoint, images: images,
                n: n, size: size, status: status, code: code, costMicros: costMicros, costUnknown: costUnknown, atRiskMicros: atRisk,
                queueSeconds: queue, endpointSeconds: endpointSeconds, seconds: seconds, thumbnails: thumbnails)
        }
    }

    func thumbnail(request id: String, index: Int) async throws -> Data? {
        let skew = clockSkew
        return try await database.rows(
            """
            SELECT bytes FROM qie_gateway_request_thumbnails
            WHERE request = \(id) AND position = \(index) AND expires > now() + make_interval(secs => \(skew))
            """
        ) { Data(buffer: try $0.decode(ByteBuffer.self)) }.first
    }

    func spending(day: String, key: String?) async throws -> [SpendingRow] {
        try await database.rows(
            """
            SELECT key, endpoint, end_user, COUNT(*)::integer, COALESCE(SUM(cost_micros), 0)::bigint,
                COALESCE(SUM(at_risk_micros), 0)::bigint, COUNT(*) FILTER (WHERE cost_unknown)::integer
            FROM qie_gateway_requests WHERE day = \(day) AND (\(key)::text IS NULL OR key = \(key)) GROUP BY key, endpoint, end_user
            """
        ) { row in
            let (key, endpoint, user, requests, cost, atRisk, unpriced) = try row.decode(
                (String, String?, String?, Int, Int64, Int64, Int).self)
            return SpendingRow(
                key: key, endpoint: endpoint, user: user, requests: requests, costMicros: cost, atRiskMicros: atRisk, unpriced: unpriced)
        }
    }

    func sweepRecords(olderThan lifetime: TimeInterval) async throws {
        let (skew, cutoff) = (clockSkew, clock.now().timeIntervalSince1970 - lifetime)
        try await database.query("DELETE FROM qie_gateway_requests WHERE at <= \(cutoff)")
        try await database.query(
            """
            DELETE FROM qie_gateway_request_thumbnails t WHERE t.expires <= now() + make_interval(secs => \(skew))
            OR NOT EXISTS (SELECT 1 FROM qie_gateway_requests r WHERE r.id = t.request)
            """)
    }
}
