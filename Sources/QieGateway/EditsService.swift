import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOFoundationCompat
import QiePipeline
import Synchronization

/// The gateway's routes and what each request goes through: the client key,
/// the form, the fields, the model, the idempotency key, the queue, the edit,
/// and the answer in OpenAI's shape.
struct EditsService: Sendable {
    let configuration: GatewayConfiguration
    let profiles: [ProviderProfile]
    let editors: [String: Editor]
    /// The HTTP client the editors share; it fetches images given as URLs.
    let client: EditClient
    /// Idempotency keys, result files, spending and requests' records: SQLite or PostgreSQL.
    let store: any GatewayStore
    /// The day's budget and each user's; each request reserves with its own.
    let budgets: GatewayBudgets
    /// Keeps each request's record once its log line is written.
    let recorder: RequestRecorder
    /// Edits running at once; `configuration.queueLimit` more wait, the rest get 429.
    let admission: Turnstile
    /// Requests inside the gateway (reading, queued, running or waiting on a
    /// key): at most `concurrency + queueLimit`, the rest get 429 before
    /// their bodies are read.
    let intake: Intake
    let address: @Sendable () -> String
    let logger: Logger
    /// Times the keep-alive lines of streamed answers.
    var clock: any QieClock = SystemClock()

    static let idempotencyHeader = HTTPField.Name("Idempotency-Key")!
    static let costHeader = HTTPField.Name("x-litellm-response-cost")!
    static let retryHeader = HTTPField.Name("x-should-retry")!
    static let requestIDHeader = HTTPField.Name("x-request-id")!

    func router() -> Router<GatewayRequestContext> {
        let router = Router(context: GatewayRequestContext.self)
        let keys = GatewayKeyMiddleware(keys: GatewayKeys(keys: configuration.keys))
        router.group("/v1/models").add(middleware: keys)
            .get { _, _ in models() }
            .get(":model") { _, context in try model(named: context.parameters.get("model") ?? "") }
        // Each edits request has its log line and id, its key checked inside them.
        router.group("/v1/images/edits").add(middleware: RequestLogMiddleware(logger: logger, recorder: recorder)).add(middleware: keys)
            .post { request, context in try await edits(request, context: context) }
        router.post("/v1/images/generations") { _, _ -> Response in
            throw GatewayError(
                status: 404,
                message: "this gateway edits images (POST /v1/images/edits); the Qwen Image Edit endpoints do not generate from text alone",
                type: "invalid_request_error", code: "unknown_url")
        }
        // Result files are reached by their unguessable id alone, like the
        // signed URLs endpoints return: no key, so any client can fetch them.
        router.get(RouterPath(configuration.filesPath + "/:id")) { _, context in try await resultFile(context.parameters.get("id") ?? "") }
        addPageRoutes(to: router, keys: keys)
        return router
    }

    /// A result file asked for as a URL, while it lasts.
    private func resultFile(_ id: String) async throws(GatewayError) -> Response {
        let stem = id.split(separator: ".").first.map(String.init) ?? id
        let stored: (body: ByteBuffer, contentType: String)?
        do {
            stored = try await store.file(stem)
        } catch {
            throw GatewayError(
                status: 503, message: "the result store cannot be read just now; try again shortly", type: "server_error",
                code: "store_unavailable", retryAfter: 1)
        }
        guard let found = stored else {
            throw GatewayError(
                status: 404, message: "no such file, or it has expired (results are kept \(Int(configuration.fileLifetime)) s)",
                type: "invalid_request_error", code: "file_not_found")
        }
        return Response(
            status: .ok, headers: [.contentType: found.contentType, .cacheControl: "private, max-age=3600"],
            body: .init(byteBuffer: found.body))
    }

    // MARK: Models

    /// Every offered endpoint, then each release offered as a model.
    private func models() -> ModelList {
        ModelList(data: profiles.map(model) + configuration.releases(among: profiles).map(model))
    }

    /// One model by its id or alias: an endpoint, or a release.
    private func model(named name: String) throws(GatewayError) -> ModelList.Model {
        if let endpoints = release(named: name), let release = ModelVersion(rawValue: name.lowercased()) {
            return model((release, endpoints))
        }
        guard let profile = try? profile(named: name) else { throw .unknownModel(name, offered: profiles.map(\.id)) }
        return model(profile)
    }

    private func model(_ profile: ProviderProfile) -> ModelList.Model {
        ModelList.Model(id: profile.id, owned_by: profile.provider, aliases: profile.aliases)
    }

    /// A release as a model: it stands for its endpoints, routed per request.
    private func model(_ release: (release: ModelVersion, endpoints: [ProviderProfile])) -> ModelList.Model {
        ModelList.Model(
            id: release.release.rawValue, owned_by: "qie", endpoints: release.endpoints.map(\.id), route: configuration.route.rawValue)
    }

    /// The offered endpoints a release stands for, when `name` is one.
    func release(named name: String) -> [ProviderProfile]? {
        guard let release = ModelVersion(rawValue: name.lowercased()) else { return nil }
        return configuration.releases(among: profiles).first { $0.release == release }?.endpoints
    }

    func profile(named name: String) throws -> ProviderProfile {
        let profile = try ProviderCatalog.profile(named: name)
        guard profiles.contains(where: { $0.id == profile.id }) else { throw GatewayError.unknownModel(name, offered: []) }
        return profile
    }

    // MARK: Edits

    /// The edit, its log line filled in as it goes (`RequestLogMiddleware` writes it).
    private func edits(_ request: Request, context: GatewayRequestContext) async throws(GatewayError) -> Response {
        guard let box = context.requestLog else { throw GatewayError(status: 500, message: "no request log", type: "server_error") }
        var line = box.value
        defer { box.value = line }
        return try await edit(request, context: context, log: &line)
    }

    private func edit(
        _ request: Request, context: GatewayRequestContext, log: inout RequestLog
    ) async throws(GatewayError) -> Response {
        let contentType = request.headers[.contentType]
        let boundary = EditsForm.boundary(contentType: contentType)
        guard boundary != nil || EditsJSON.isJSON(contentType: contentType) else {
            throw .invalid(
                nil,
                "send the edit as multipart/form-data (the OpenAI SDK's images.edit does) or as application/json with images as image_url objects; got \(contentType ?? "no content type")",
                code: "invalid_content_type")
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > configuration.maxBodyBytes {
            throw .tooLarge(limit: configuration.maxBodyBytes)
        }
        // Nothing is read before the request has a place: among the requests
        // inside the gateway (running, queued, or waiting on an idempotency
        // key), then among the edits running. Bodies being read or kept are
        // bounded by the first, the work in progress by the second.
        // What the request holds is given back once its answer is written:
        // at the end of this call, or of the streamed body.
        let hold = RequestHold()
        defer { if !log.streamed { hold.release() } }
        guard intake.enter() else { throw queueFull }
        let intake = self.intake
        hold.add { intake.leave() }
        let place = AdmissionPlace(admission: admission, queueLimit: configuration.queueLimit)
        let queued = Date()
        guard await place.take() else { throw queueFull }
        hold.add { place.give() }
        log.queueSeconds = Date().timeIntervalSince(queued)
        logger.debug("reading the body", metadata: ["request": "\(log.requestID)"])
        let reading = Date()
        let form: EditsForm
        if let boundary {
            form = try await EditsForm.read(
                request.body, boundary: boundary, limit: configuration.maxBodyBytes, directory: configuration.stateDirectory)
        } else {
            let (client, options) = (client, configuration.options)
            let checks = ResultChecks(
                maxBytes: options.maxResultBytes, deadline: options.timeouts.download, allowPrivateAddresses: options.allowPrivateInputs)
            form = try await EditsJSON.read(
                request.body, limit: configuration.maxBodyBytes, directory: configuration.stateDirectory,
                fetch: { address, label in try await client.fetchImage(address, label: label, checks: checks) })
        }
        let uploads = form.folder
        hold.add { try? FileManager.default.removeItem(atPath: uploads) }
        let asked = try EditsRequest(
            form: form, limits: configuration.options.limits, maxOutputMegapixels: configuration.maxOutputMegapixels)
        log.readSeconds = Date().timeIntervalSince(reading)
        log.model = asked.model
        log.modelAsked = asked.model
        log.user = asked.user
        log.n = asked.n
        if asked.responseFormat == .url && !configuration.servesResultLinks {
            throw .invalid(
                "response_format",
                "response_format=url needs the gateway's public URL: it listens on \(configuration.host), which is no address to give clients; ask for b64_json, or give the gateway the public URL clients reach it at",
                code: "result_links_unavailable")
        }
        log.images = asked.images.count
        let profile: ProviderProfile
        // A release named as the model: routed among the offered endpoints that run it.
        let routed = asked.model.flatMap(release(named:)) ?? []
        if let first = routed.first {
            profile = first
        } else if let name = asked.model {
            do { profile = try self.profile(named: name) } catch { throw .unknownModel(name, offered: profiles.map(\.id)) }
        } else {
            profile = profiles[0]
        }
        log.model = profile.id
        guard let editor = editors[profile.id] else { throw .unknownModel(profile.id, offered: profiles.map(\.id)) }
        // The endpoint's own limit on images, said before anything is prepared.
        let takers = routed.isEmpty ? [profile] : routed
        if let most = takers.map(\.images.maxCount).max(), asked.images.count > most {
            let name = routed.isEmpty ? profile.id : "every endpoint of \(asked.model ?? profile.id)"
            throw .invalid(
                asked.imageParam,
                "\(name) takes at most \(most) image\(most == 1 ? "" : "s") (the first is edited, the others go along as references); got \(asked.images.count)",
                code: "too_many_images")
        }

        var options = configuration.options
        options.endpoint = profile.id
        if routed.count > 1 { options.routing = Routing(endpoints: routed.map(\.id), policy: configuration.route) }
        options.numImages = asked.n
        // OpenAI's default is PNG, whatever the endpoint returns.
        options.format = asked.outputFormat ?? .png
        options.quality = asked.compression
        options.restore = .exact
        options.flow = nil
        // Thumbnails for the request's record, made beside the results.
        options.preview = RequestRecorder.keepsRecord(ofKey: context.keyID) ? Thumbnail.preview : nil
        let input = EditInput(
            image: .file(asked.images[0]), references: asked.images.dropFirst().map { .file($0) }, prompt: asked.prompt,
            seed: asked.seed, negativePrompt: asked.negativePrompt, size: asked.size, mask: asked.mask.map { .file($0) })
        // With stream=true, each image finished while others are still with
        // the endpoint is sent at once, as its own event.
        let early = asked.stream ? EarlyImages(asked: asked, service: self) : nil
        // The day's budget and the user's (a per-user budget refuses a request without user).
        var hooks = EditHooks(budget: try budgets.budget(for: asked.user))
        // Whether anything was sent (an idempotent retry sends nothing and
        // is charged nothing), and what each request was or may have been billed.
        let watch = EditWatch()
        // A duplicate waiting for the first edit under its key gives its
        // place back while it waits, and takes one again when its edit starts.
        hooks.events = { event in
            switch event {
            case .waitingForKey:
                place.give()
            case .started:
                guard await place.take() else { throw CancellationError() }
            case .routed(let endpoint, _):
                watch.routedTo.withLock { $0 = endpoint }
            case .moved(let index, let move):
                if case .sending = move { watch.sent.store(true, ordering: .relaxed) }
                watch.money.withLock { _ = $0[index, default: RequestMoney()].apply(move) }
            case .imageReady(let ready):
                // Streamed as soon as it is ready; the last one goes with the edit's account.
                guard let early, !ready.isLast else { break }
                await early.send(ready)
            case .prepared, .fetched:
                break
            }
        }
        if let key = request.headers[Self.idempotencyHeader], !key.isEmpty {
            // Keys are the client's own: two clients never share one. A key
            // stands for one request: reused for another, it is refused
            // rather than answered with the first request's images.
            let scoped = context.keyID + "\n" + key
            let bound: Bool
            do {
                bound = try await store.bind(scoped, to: try asked.fingerprint(model: routed.isEmpty ? profile.id : profile.version.rawValue))
            } catch {
                throw GatewayError(status: 500, message: "the idempotency record could not be read: \(error)", type: "server_error")
            }
            guard bound else {
                throw GatewayError(
                    status: 400,
                    message: "Idempotency-Key \(key) was first used with other fields or images; use a new key for a different request",
                    type: "invalid_request_error", code: "idempotency_key_reused", mayRetry: false)
            }
            hooks.idempotency = (store.idempotency, scoped)
        }

        // The edit and its answer: run now, or (stream=true) while the
        // streamed body is written, its headers sent at once.
        let run: @Sendable (inout RequestLog) async throws(GatewayError) -> (headers: HTTPFields, body: InlineImagesBody) = {
            [hooks, options] log throws(GatewayError) in
            try await perform(
                editor: editor, input: input, options: options, hooks: hooks, asked: asked, context: context, place: place,
                watch: watch, sentEarly: early, log: &log)
        }
        guard let early else {
            let (headers, body) = try await run(&log)
            return Response(status: .ok, headers: headers, body: body.body)
        }
        log.streamed = true
        return streamed(run, early: early, hold: hold, log: log)
    }

    /// The edit sent, waited for and answered: its answer's headers and body.
    private func perform(
        editor: Editor, input: EditInput, options: EditOptions, hooks: EditHooks, asked: EditsRequest,
        context: GatewayRequestContext, place: AdmissionPlace, watch: EditWatch, sentEarly: EarlyImages?,
        log: inout RequestLog
    ) async throws(GatewayError) -> (headers: HTTPFields, body: InlineImagesBody) {
        let result: EditResult
        let clientGone = Atomic<Bool>(false)
        do {
            if hooks.idempotency == nil {
                // No retry will come for this edit: when its client goes away,
                // it is given up, and its accepted jobs cancelled where the
                // endpoint can cancel them (money released when they never ran).
                let editing = Task { [hooks] in try await editor.edit(input, options: options, hooks: hooks) }
                context.whenClientGone {
                    clientGone.store(true, ordering: .relaxed)
                    editing.cancel()
                }
                result = try await withTaskCancellationHandler {
                    try await editing.value
                } onCancel: {
                    editing.cancel()
                }
            } else {
                result = try await editor.edit(input, options: options, hooks: hooks)
            }
            log.timings = result.timings
        } catch {
            if place.refused { throw queueFull }
            if let endpoint = watch.routedTo.withLock({ $0 }) { log.model = endpoint }
            // Money that was or may have been billed shows in the log, whatever the answer.
            let requests = watch.money.withLock { Array($0.values) }
            let billed = requests.filter { $0.charge == .billed }.compactMap(\.amount).reduce(0, +)
            let atRisk = requests.filter { $0.charge == .atRisk }.compactMap(\.amount).reduce(0, +)
            if billed > 0 { log.cost = "\(billed)" }
            if atRisk > 0 { log.atRisk = "\(atRisk)" }
            let cancelled = requests.filter { $0.state == .cancelled }.count
            if cancelled > 0 { log.cancelled = cancelled }
            if clientGone.load(ordering: .relaxed) {
                // No one hears the answer; the log says why the edit ended (nginx's 499).
                throw GatewayError(status: 499, message: "the client closed the connection", type: "client_closed_request")
            }
            throw GatewayError(error as? EditError ?? .ledger("\(error)"), budget: hooks.budget)
        }
        let replayed = hooks.idempotency != nil && !watch.sent.load(ordering: .relaxed)
        log.model = result.endpoint
        log.outcome = replayed ? "200 replayed" : "200"
        log.endpointSeconds = replayed ? nil : result.timings.endpoint
        log.cost = replayed ? "0" : result.cost.map { "\($0)" } ?? "unknown"
        log.size = result.images.first.map { "\($0.size.width)x\($0.size.height)" }
        log.results = result.images  // thumbnails for the request's record
        let answering = Date()
        defer { log.answerSeconds = Date().timeIntervalSince(answering) }
        return try await answer(result, asked: asked, replayed: replayed, skipping: sentEarly?.sent ?? [])
    }

    /// 429: the gateway is full.
    private var queueFull: GatewayError {
        GatewayError(
            status: 429,
            message: "the gateway has \(configuration.concurrency) edits running and \(configuration.queueLimit) waiting; try again shortly",
            type: "rate_limit_error", code: "gateway_queue_full", retryAfter: 1)
    }

    /// An image as the answer holds it: a link to a result file, or (with
    /// `b64_json`) `marker` and its index in `inline`, where its base64 is
    /// written as the body is sent, a chunk at a time.
    func item(for image: EditedImage, asked: EditsRequest, marker: String, inline: inout [Data]) async throws(GatewayError)
        -> ImagesAnswer.Item
    {
        switch asked.responseFormat {
        case .url:
            do {
                let id = try await store.addFile(image, lifetime: configuration.fileLifetime)
                return ImagesAnswer.Item(url: address() + configuration.filesPath + "/\(id).\(image.format.fileExtension)")
            } catch {
                throw GatewayError(status: 500, message: "the result could not be stored: \(error)", type: "server_error", mayRetry: false)
            }
        case .base64:
            inline.append(image.data)
            return ImagesAnswer.Item(b64_json: marker + String(inline.count - 1))
        }
    }

    /// One `image_edit.completed` event for `image`, with the edit's account when it is the last.
    static func event(
        _ item: ImagesAnswer.Item, image: EditedImage, asked: EditsRequest, created: Int, qie: ImagesAnswer.Qie?
    ) -> String {
        let event = ImagesAnswer.StreamEvent(
            item: item, created_at: created, size: "\(image.size.width)x\(image.size.height)", quality: asked.quality,
            output_format: image.format.rawValue, usage: .init(images: [image]), qie: qie)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = (try? encoder.encode(event)) ?? Data("{}".utf8)
        return "event: image_edit.completed\ndata: \(String(decoding: json, as: UTF8.self))\n\n"
    }

    /// The edit's answer in OpenAI's shape, or as server-sent events when
    /// asked (without the events of the images in `skipping`, streamed already).
    private func answer(_ result: EditResult, asked: EditsRequest, replayed: Bool, skipping: Set<Int>) async throws(GatewayError)
        -> (headers: HTTPFields, body: InlineImagesBody)
    {
        var data: [ImagesAnswer.Item] = []
        var inline: [Data] = []
        let marker = InlineImagesBody.newMarker()
        let created = Int(Date().timeIntervalSince1970)
        let qie = ImagesAnswer.Qie(result, replayed: replayed)
        var events = ""
        let left = result.images.indices.filter { !skipping.contains($0) }
        for (index, image) in result.images.enumerated() {
            if asked.stream {
                guard left.contains(index) else { continue }
                let item = try await item(for: image, asked: asked, marker: marker, inline: &inline)
                events += Self.event(item, image: image, asked: asked, created: created, qie: index == left.last ? qie : nil)
            } else {
                data.append(try await item(for: image, asked: asked, marker: marker, inline: &inline))
            }
        }
        var headers: HTTPFields = [:]
        if replayed {
            headers[Self.costHeader] = "0"
        } else if let cost = result.cost {
            headers[Self.costHeader] = "\(cost)"
        }
        if asked.stream { return (headers, InlineImagesBody(text: events, marker: marker, images: inline)) }
        let first = result.images.first
        let answer = ImagesAnswer(
            created: created, data: data, output_format: first?.format.rawValue ?? asked.outputFormat?.rawValue ?? "png",
            size: first.map { "\($0.size.width)x\($0.size.height)" } ?? "", quality: asked.quality,
            usage: .init(images: result.images), qie: qie)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        headers[.contentType] = "application/json"
        let body = (try? encoder.encode(answer)) ?? Data("{}".utf8)
        let text = String(decoding: body, as: UTF8.self)
        return (headers, InlineImagesBody(text: text, marker: marker, images: inline))
    }

    /// A streamed answer (`stream=true`): its headers go out at once, a
    /// comment line keeps the connection alive every `streamKeepAlive`
    /// seconds while the edit runs, then its events follow (or an `error`
    /// event with the error OpenAI's shape gives it); the request's log line
    /// is written, and what it holds given back, when the stream ends.
    private func streamed(
        _ run: @escaping @Sendable (inout RequestLog) async throws(GatewayError) -> (headers: HTTPFields, body: InlineImagesBody),
        early: EarlyImages, hold: RequestHold, log: RequestLog
    ) -> Response {
        let (clock, interval, logger) = (clock, configuration.streamKeepAlive, logger)
        let (items, feed) = (early.items, early.feed)
        let body = ResponseBody { writer in
            let editing = Task {
                var line = log
                do throws(GatewayError) {
                    let (_, body) = try await run(&line)
                    feed.yield(.done(.success(body), line))
                } catch {
                    line.outcome = "\(error.statusCode) \(error.code ?? error.type)"
                    feed.yield(.done(.failure(error), line))
                }
                feed.finish()
            }
            let ticker = Task {
                while !Task.isCancelled {
                    do { try await clock.sleep(for: interval) } catch { return }
                    feed.yield(.tick)
                }
            }
            defer {
                ticker.cancel()
                hold.release()
            }
            var line = log
            var logged = false
            do {
                try await writer.write(ByteBuffer(string: ": qie is editing\n\n"))
                for await item in items {
                    switch item {
                    case .tick:
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                    case .image(let event):
                        try await event.write(to: &writer)
                    case .done(let outcome, let ended):
                        line = ended
                        ticker.cancel()
                        switch outcome {
                        case .success(let answer): try await answer.write(to: &writer)
                        case .failure(let error):
                            try await writer.write(ByteBuffer(string: "event: error\ndata: \(String(decoding: error.body, as: UTF8.self))\n\n"))
                        }
                    }
                }
                // Its line (and record) is written as the last event is sent, before the stream closes.
                line.end(to: logger)
                logged = true
                try await writer.finish(nil)
            } catch {
                // The client went away mid-stream: the edit ends as it would
                // have (given up unless it has an Idempotency-Key), and its line says how.
                ticker.cancel()
                if !logged {
                    for await case .done(_, let ended) in items { line = ended }
                    line.end(to: logger)
                }
                _ = editing
                throw error
            }
        }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", Self.noBufferingHeader: "no"], body: body)
    }

    /// Asks proxies (nginx) not to buffer a streamed answer.
    static let noBufferingHeader = HTTPField.Name("X-Accel-Buffering")!

    // MARK: Answers

    static func response(_ error: GatewayError) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let seconds = error.retryAfter { headers[.retryAfter] = String(seconds) }
        if !error.mayRetry { headers[retryHeader] = "false" }
        return Response(
            status: error.status, headers: headers, body: .init(byteBuffer: ByteBuffer(data: error.body)))
    }
}

/// `GET /v1/models` as OpenAI answers it; a release offered as a model
/// also names its endpoints and the route among them.
struct ModelList: ResponseEncodable {
    struct Model: ResponseEncodable {
        var id: String
        var object = "model"
        var created = 0
        var owned_by: String
        var aliases: [String]?
        var endpoints: [String]?
        var route: String?
    }

    var object = "list"
    var data: [Model]
}

/// What one request's edit did with money, as its requests moved: whether
/// anything was sent, what each request was or may have been billed, and
/// the endpoint routing sent it to last.
final class EditWatch: Sendable {
    let sent = Atomic<Bool>(false)
    let money = Mutex<[Int: RequestMoney]>([:])
    let routedTo = Mutex<String?>(nil)
}

/// What a request holds until its answer is written (its places in the
/// gateway, its uploaded files): given back once, in reverse order, at the
/// end of the request or of its streamed body.
final class RequestHold: Sendable {
    private let releases = Mutex<[@Sendable () -> Void]>([])

    func add(_ release: @escaping @Sendable () -> Void) { releases.withLock { $0.append(release) } }

    func release() {
        let all = releases.withLock { releases in
            defer { releases = [] }
            return releases
        }
        for release in all.reversed() { release() }
    }

    deinit { release() }
}

/// One log line per request: who, what, how it ended, how long, what it cost.
/// What the client chose (the model's name) is cut to 100 characters; the
/// handler escapes what could end the line.
struct RequestLog {
    var requestID: String
    /// When the request came, for its duration.
    var started = Date()
    /// When the request came by the gateway's clock: its record's time, so
    /// records list in the order their requests came whatever each took.
    var arrived: Date
    /// Answered as a stream: the line is written when the stream ends.
    var streamed = false
    var key = "-"
    var model: String?
    /// The end user the client named (`user`).
    var user: String?
    var images = 0
    var n = 1
    var size: String?
    var outcome = "-"
    var seconds: Double = 0
    var endpointSeconds: Double?
    var cost: String?
    /// Money a failed edit may have been billed (sent without a usable answer).
    var atRisk: String?
    /// Jobs given up and cancelled at the endpoint before they ran.
    var cancelled: Int?
    var queueSeconds: Double?
    var readSeconds: Double?
    var timings: EditTimings?
    var answerSeconds: Double?
    /// The model the client asked for (`model` is the endpoint it ran on), for the record.
    var modelAsked: String?
    /// The results, for the thumbnails of the request's record (never logged).
    var results: [EditedImage] = []
    /// Keeps the request's record when the line is written.
    var recorder: RequestRecorder?

    /// Writes the line, its time measured to now, and keeps the request's record.
    func end(to logger: Logger) {
        var line = self
        line.seconds = Date().timeIntervalSince(started)
        line.write(to: logger)
        recorder?.record(line)
    }

    func write(to logger: Logger) {
        var metadata: Logger.Metadata = [
            "request": "\(requestID)", "key": "\(key)", "model": "\(GatewayLogHandler.capped(model ?? "-"))", "images": "\(images)", "n": "\(n)",
            "outcome": "\(outcome)", "seconds": "\(String(format: "%.3f", seconds))",
        ]
        if let size { metadata["size"] = "\(size)" }
        if let user { metadata["user"] = "\(GatewayLogHandler.capped(user))" }
        if let endpointSeconds { metadata["endpoint_seconds"] = "\(String(format: "%.3f", endpointSeconds))" }
        if let cost { metadata["cost_usd"] = "\(cost)" }
        if let atRisk { metadata["at_risk_usd"] = "\(atRisk)" }
        if let cancelled { metadata["cancelled"] = "\(cancelled)" }
        // Where the time went: reading the upload, each step of the edit, writing the answer.
        var steps: [String] = []
        if let queueSeconds, queueSeconds >= 0.001 { steps.append(String(format: "queue:%.3f", queueSeconds)) }
        if let readSeconds { steps.append(String(format: "read:%.3f", readSeconds)) }
        if let timings {
            steps.append(String(format: "prepare:%.3f", timings.prepare))
            steps.append(String(format: "fetch:%.3f", timings.fetch))
            steps.append(String(format: "finish:%.3f", timings.finish))
        }
        if let answerSeconds { steps.append(String(format: "answer:%.3f", answerSeconds)) }
        if !steps.isEmpty { metadata["steps"] = "\(steps.joined(separator: ","))" }
        logger.info("POST /v1/images/edits", metadata: metadata)
    }
}

/// `POST /v1/images/edits`'s answer, as OpenAI shapes it, with qie's own
/// account of the edit. Encoded with JSONEncoder: a base64 image is written
/// in a few milliseconds, where JSONSerialization took tens.
struct ImagesAnswer: Encodable {
    struct Item: Encodable {
        var b64_json: String?
        var url: String?
    }

    /// OpenAI's usage counts tokens; the endpoints meter images, so tokens
    /// are 0 and the images and megapixels delivered are given.
    struct Usage: Encodable {
        struct Details: Encodable {
            var image_tokens = 0
            var text_tokens = 0
        }

        var input_tokens = 0
        var output_tokens = 0
        var total_tokens = 0
        var input_tokens_details = Details()
        var images: Int
        var output_megapixels: Double

        /// What `images` make: their count and megapixels (to three decimals).
        init(images: [EditedImage]) {
            self.images = images.count
            let megapixels = images.reduce(0.0) { $0 + Double($1.size.width * $1.size.height) / 1_000_000 }
            output_megapixels = (megapixels * 1000).rounded() / 1000
        }
    }

    /// The endpoint, its request ids, the plan and the cost ("unknown", never 0, without a price).
    struct Qie: Encodable {
        struct Plan: Encodable {
            var input: String
            var sent: String
            var fit: String
        }

        var endpoint: String
        var model: String
        var request_ids: [String]
        var plan: Plan
        var cost_usd: String
        var cost_source: String
        var submissions: Int
        /// The first answer under the same Idempotency-Key, sent again: nothing was charged now.
        var replayed: Bool

        init(_ result: EditResult, replayed: Bool) {
            endpoint = result.endpoint
            model = result.model
            request_ids = result.requestIDs
            plan = Plan(
                input: "\(result.plan.input.width)x\(result.plan.input.height)",
                sent: "\(result.plan.target.width)x\(result.plan.target.height)", fit: result.plan.fit.rawValue)
            cost_usd = result.cost.map { "\($0)" } ?? "unknown"
            cost_source = result.reportedCost != nil ? "reported" : (result.estimatedCost != nil ? "estimated" : "unknown")
            submissions = result.submissions
            self.replayed = replayed
        }
    }

    /// One `image_edit.completed` server-sent event.
    struct StreamEvent: Encodable {
        var type = "image_edit.completed"
        var b64_json: String?
        var url: String?
        var created_at: Int
        var size: String
        var quality: String
        var background = "opaque"
        var output_format: String
        var usage: Usage
        var qie: Qie?

        init(item: Item, created_at: Int, size: String, quality: String, output_format: String, usage: Usage, qie: Qie?) {
            b64_json = item.b64_json
            url = item.url
            self.created_at = created_at
            self.size = size
            self.quality = quality
            self.output_format = output_format
            self.usage = usage
            self.qie = qie
        }
    }

    var created: Int
    var data: [Item]
    var output_format: String
    var size: String
    var background = "opaque"
    var quality: String
    var usage: Usage
    var qie: Qie

    init(created: Int, data: [Item], output_format: String, size: String, quality: String, usage: Usage, qie: Qie) {
        self.created = created
        self.data = data
        self.output_format = output_format
        self.size = size
        self.quality = quality
        self.usage = usage
        self.qie = qie
    }
}

/// What a streamed answer sends, in order.
enum StreamItem: Sendable {
    /// A keep-alive comment is due.
    case tick
    /// An image's event, sent as soon as the image is ready.
    case image(InlineImagesBody)
    /// The edit ended: its remaining events (the last with its account), or its error.
    case done(Result<InlineImagesBody, GatewayError>, RequestLog)
}

/// The images of a streamed edit sent before the edit ends, each as its
/// own `image_edit.completed` event the moment it is finished, and which
/// of the result's images they were (the answer leaves them out).
final class EarlyImages: Sendable {
    let items: AsyncStream<StreamItem>
    let feed: AsyncStream<StreamItem>.Continuation
    private let asked: EditsRequest
    private let service: EditsService
    private let sentIndices = Mutex<Set<Int>>([])

    init(asked: EditsRequest, service: EditsService) {
        (items, feed) = AsyncStream.makeStream(of: StreamItem.self)
        self.asked = asked
        self.service = service
    }

    /// The result's images sent already.
    var sent: Set<Int> { sentIndices.withLock { $0 } }

    /// Sends `ready` as an event now; one that cannot be (its result file
    /// not stored) is left to the answer, which says why.
    func send(_ ready: ReadyImage) async {
        var inline: [Data] = []
        let marker = InlineImagesBody.newMarker()
        guard let item = try? await service.item(for: ready.image, asked: asked, marker: marker, inline: &inline) else { return }
        let text = EditsService.event(item, image: ready.image, asked: asked, created: Int(Date().timeIntervalSince1970), qie: nil)
        sentIndices.withLock { _ = $0.insert(ready.index) }
        feed.yield(.image(InlineImagesBody(text: text, marker: marker, images: inline)))
    }
}

/// Counts the requests inside the gateway, up to a limit.
final class Intake: Sendable {
    private let count = Atomic<Int>(0)
    let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Takes a place, or false (nothing to leave) when all are taken.
    func enter() -> Bool {
        let (_, now) = count.add(1, ordering: .acquiringAndReleasing)
        if now <= limit { return true }
        count.subtract(1, ordering: .acquiringAndReleasing)
        return false
    }

    func leave() { count.subtract(1, ordering: .acquiringAndReleasing) }
}

/// One request's place among the edits running: taken before its body is
/// read, given back while it waits on another request's idempotency key,
/// taken again when its edit starts, and given back once at the end.
final class AdmissionPlace: Sendable {
    private let admission: Turnstile
    private let queueLimit: Int
    private let state = Mutex<(held: Bool, refused: Bool)>((false, false))

    init(admission: Turnstile, queueLimit: Int) {
        self.admission = admission
        self.queueLimit = queueLimit
    }

    /// Whether a place was refused because the queue was full.
    var refused: Bool { state.withLock { $0.refused } }

    /// Takes a place (waiting in the queue) unless one is held; false when the queue is full.
    func take() async -> Bool {
        if state.withLock({ $0.held }) { return true }
        guard await admission.enter(queueLimit: queueLimit) else {
            state.withLock { $0.refused = true }
            return false
        }
        state.withLock { $0.held = true }
        return true
    }

    /// Gives the place back, if held.
    func give() {
        let held = state.withLock { state -> Bool in
            defer { state.held = false }
            return state.held
        }
        if held { admission.leave() }
    }
}

/// An answer whose images are written as base64 while it is sent, a chunk
/// at a time, rather than built whole in memory first: `text` holds
/// `marker` followed by an image's index where that image's base64 goes.
struct InlineImagesBody {
    private enum Piece {
        case text(ByteBuffer)
        case image(Data)
    }

    private let pieces: [Piece]

    /// Bytes of an image encoded per write (a multiple of 3: no padding inside).
    static let chunk = 3 << 16

    /// A marker no answer holds otherwise.
    static func newMarker() -> String { "qie-inline-" + UUID().uuidString + "-" }

    init(text: String, marker: String, images: [Data]) {
        var pieces: [Piece] = []
        var rest = Substring(text)
        while let found = rest.range(of: marker) {
            let digits = rest[found.upperBound...].prefix(while: \.isNumber)
            pieces.append(.text(ByteBuffer(string: String(rest[..<found.lowerBound]))))
            if let index = Int(digits), images.indices.contains(index) { pieces.append(.image(images[index])) }
            rest = rest[digits.endIndex...]
        }
        pieces.append(.text(ByteBuffer(string: String(rest))))
        self.pieces = pieces
    }

    /// The exact length: the text, and each image's base64.
    var contentLength: Int {
        pieces.reduce(0) { total, piece in
            switch piece {
            case .text(let buffer): total + buffer.readableBytes
            case .image(let data): total + Base64Encoder.encodedCount(data.count)
            }
        }
    }

    var body: ResponseBody {
        let answer = self
        return ResponseBody(contentLength: contentLength) { writer in
            try await answer.write(to: &writer)
            try await writer.finish(nil)
        }
    }

    /// Writes the answer, its images as base64 a chunk at a time.
    func write(to writer: inout any ResponseBodyWriter) async throws {
        for piece in pieces {
            switch piece {
            case .text(let buffer):
                try await writer.write(buffer)
            case .image(let data):
                var start = 0
                while start < data.count {
                    let end = min(data.count, start + Self.chunk)
                    var buffer = ByteBufferAllocator().buffer(capacity: Base64Encoder.encodedCount(end - start))
                    data[data.startIndex + start..<data.startIndex + end].withUnsafeBytes { input in
                        _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Base64Encoder.encodedCount(input.count)) {
                            Base64Encoder.encode(input, into: $0)
                        }
                    }
                    try await writer.write(buffer)
                    start = end
                }
            }
        }
    }
}
