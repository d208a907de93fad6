import Crypto
import Foundation
import QieProviders
import Testing

private func object(_ data: Data) throws -> NSDictionary {
    try #require(try JSONSerialization.jsonObject(with: data) as? NSDictionary)
}

private func object(_ text: String) throws -> NSDictionary { try object(Data(text.utf8)) }

private func built(
    _ profile: ProviderProfile, _ request: EditRequest, size: SizeRequest = .automatic, flow: ProviderProfile.Flow? = nil,
    baseURL: String? = nil, input: PixelSize = PixelSize(width: 1000, height: 1000)
) throws -> (BuiltRequest, Data) {
    let plan = try SizePlanner.plan(input: input, for: profile, request: size)
    let request = try RequestBuilder.build(request, plan: plan, for: profile, apiKey: "fal-SECRET", baseURL: baseURL, flow: flow)
    return (request, try request.body.data())
}

private func read(_ json: String, status: Int = 200, _ profile: ProviderProfile = .falQwenImageEdit2511, jobID: String? = nil)
    throws -> ResponseOutcome
{
    try ResponseReader.read(Data(json.utf8), status: status, from: profile, jobID: jobID)
}

@Suite("fal.ai: requests as its endpoint types have them")
struct FalRequestTests {
    @Test("2511, synchronous: fal.run, Key auth, image_urls, image_size as {width, height}, options in their fields")
    func edit2511() throws {
        let request = EditRequest(
            prompt: "Make it night", images: [.url("https://example.com/a.jpg"), .url("https://example.com/b.png")],
            outputFormat: .webp, negativePrompt: "blur", seed: 42, numImages: 2, syncMode: true, safetyChecker: false,
            guidanceScale: 4.5, inferenceSteps: 28, acceleration: "high")
        let (request2511, data) = try built(.falQwenImageEdit2511, request, input: PixelSize(width: 400, height: 300))
        #expect(request2511.method == "POST")
        #expect(request2511.url == "https://fal.run/fal-ai/qwen-image-edit-2511")
        #expect(request2511.headers.contains { $0 == ("Authorization", "Key fal-SECRET") })
        #expect(request2511.headers.contains { $0 == ("Content-Type", "application/json") })
        #expect(request2511.redactedHeaders.contains { $0 == ("Authorization", "Key ***") })
        #expect(try object(data) == object("""
            {"prompt": "Make it night", "image_urls": ["https://example.com/a.jpg", "https://example.com/b.png"],
             "image_size": {"width": 1184, "height": 880}, "negative_prompt": "blur", "seed": 42, "num_images": 2,
             "sync_mode": true, "enable_safety_checker": false, "guidance_scale": 4.5, "num_inference_steps": 28,
             "acceleration": "high", "output_format": "webp"}
            """))
        #expect(request2511.emulations.isEmpty)
    }

    @Test("The queue: submitted to queue.fal.run; a webhook goes in the URL's fal_webhook, escaped, never in the body")
    func queue() throws {
        var request = EditRequest(prompt: "p", images: [.url("https://example.com/a.jpg")])
        let (polling, _) = try built(.falQwenImageEdit2511, request, flow: .polling)
        #expect(polling.url == "https://queue.fal.run/fal-ai/qwen-image-edit-2511")
        request.callbackURL = "https://hooks.example/fal?run=a&b=c d"
        let (callback, data) = try built(.falQwenImageEditPlus, request, size: .size(PixelSize(width: 1024, height: 768)), flow: .callback)
        #expect(callback.url == "https://queue.fal.run/fal-ai/qwen-image-edit-plus?fal_webhook=https%3A%2F%2Fhooks.example%2Ffal%3Frun%3Da%26b%3Dc%20d")
        #expect(try object(data) == object("""
            {"prompt": "p", "image_urls": ["https://example.com/a.jpg"], "image_size": {"width": 1024, "height": 768}}
            """))
    }

    @Test("qwen-image-edit takes one image as image_url; 2509 and plus send image_urls; formats outside each list are converted")
    func otherEndpoints() throws {
        let one = EditRequest(prompt: "p", images: [.bytes(Data([1, 2, 3]), format: .png, filename: "a.png")], outputFormat: .jpeg)
        let (edit, data) = try built(.falQwenImageEdit, one)
        #expect(edit.url == "https://fal.run/fal-ai/qwen-image-edit")
        #expect(try object(data) == object("""
            {"prompt": "p", "image_url": "data:image/png;base64,AQID", "image_size": {"width": 1024, "height": 1024},
             "output_format": "jpeg"}
            """))
        let (plus, plusData) = try built(.falQwenImageEdit2509, EditRequest(prompt: "p", images: [.url("u")], outputFormat: .webp))
        #expect(plus.url == "https://fal.run/fal-ai/qwen-image-edit-2509")
        #expect(plus.emulations == [.convertOutput(from: .png, to: .webp)])
        #expect((try object(plusData))["output_format"] as? String == "png")
        #expect((try object(plusData))["image_urls"] as? [String] == ["u"])
        let two = EditRequest(prompt: "p", images: [.url("a"), .url("b")])
        #expect(throws: ProvidersError.self) { try built(.falQwenImageEdit, two) }
    }

    @Test("Pointed at an emulator or proxy, the synchronous route is BASE/fal.run/..., the queue BASE/...")
    func pointedElsewhere() throws {
        let request = EditRequest(prompt: "p", images: [.url("u")])
        #expect(try built(.falQwenImageEdit2511, request, baseURL: "http://127.0.0.1:9/").0.url == "http://127.0.0.1:9/fal.run/fal-ai/qwen-image-edit-2511")
        #expect(try built(.falQwenImageEdit2511, request, flow: .polling, baseURL: "http://127.0.0.1:9").0.url == "http://127.0.0.1:9/fal-ai/qwen-image-edit-2511")
        // The documented base given explicitly is not elsewhere.
        #expect(try built(.falQwenImageEdit2511, request, baseURL: "https://queue.fal.run").0.url == "https://fal.run/fal-ai/qwen-image-edit-2511")
    }

    @Test("Status, result and cancel (PUT) on the queue's requests/ID routes, with the key; the result follows the poll's base")
    func jobRoutes() throws {
        let profile = ProviderProfile.falQwenImageEdit2511
        let poll = try #require(RequestBuilder.poll(id: "a/b", for: profile, apiKey: "fal-SECRET", baseURL: "http://127.0.0.1:9"))
        #expect(poll.method == "GET" && poll.url == "http://127.0.0.1:9/fal-ai/qwen-image-edit-2511/requests/a%2Fb/status")
        #expect(poll.headers.contains { $0 == ("Authorization", "Key fal-SECRET") })
        let result = try #require(RequestBuilder.result(id: "a/b", for: profile, following: poll))
        #expect(result.method == "GET" && result.url == "http://127.0.0.1:9/fal-ai/qwen-image-edit-2511/requests/a%2Fb")
        #expect(result.headers.contains { $0 == ("Authorization", "Key fal-SECRET") })
        #expect(RequestBuilder.result(id: "x", for: profile, apiKey: nil)?.url == "https://queue.fal.run/fal-ai/qwen-image-edit-2511/requests/x")
        let cancel = try #require(RequestBuilder.cancel(id: "x", for: .falQwenImageEdit, apiKey: "fal-SECRET"))
        #expect(cancel.method == "PUT" && cancel.url == "https://queue.fal.run/fal-ai/qwen-image-edit/requests/x/cancel")
        // Hosts whose polls carry the result have no result route.
        #expect(RequestBuilder.result(id: "x", for: .runpodQwenImageEdit2511, following: poll) == nil)
    }

    @Test("Each endpoint's ranges and acceleration levels are checked before sending", arguments: [
        (ProviderProfile.falQwenImageEdit2511, EditOption.numImages, "5"), (.falQwenImageEdit2511, .inferenceSteps, "51"),
        (.falQwenImageEdit2511, .guidanceScale, "0.5"), (.falQwenImageEdit2509, .inferenceSteps, "1"),
        (.falQwenImageEditPlus, .guidanceScale, "20.5"), (.falQwenImageEdit, .inferenceSteps, "51"),
        (.falQwenImageEditPlus, .acceleration, "high"),
    ])
    func ranges(profile: ProviderProfile, option: EditOption, value: String) throws {
        var request = EditRequest(prompt: "p", images: [.url("u")])
        switch option {
        case .numImages: request.numImages = Int(value)!
        case .inferenceSteps: request.inferenceSteps = Int(value)!
        case .guidanceScale: request.guidanceScale = Double(value)!
        default: request.acceleration = value
        }
        let error = #expect(throws: ProvidersError.self) { try built(profile, request) }
        #expect(error?.kind == .invalidOption && error?.setting?.setting == option.setting, "\(String(describing: error))")
        #expect(error?.message.contains(value) == true, "\(String(describing: error?.message))")
    }

    @Test("In range at one endpoint, out at another: 2509 takes guidance 0 and 100 steps")
    func perEndpointRanges() throws {
        let request = EditRequest(prompt: "p", images: [.url("u")], guidanceScale: 0, inferenceSteps: 100)
        let (_, data) = try built(.falQwenImageEdit2509, request)
        #expect((try object(data))["num_inference_steps"] as? Int == 100)
        #expect(throws: ProvidersError.self) { try built(.falQwenImageEdit2511, request) }
    }

    @Test("Sizes: any WxH up to 14142 a side, about a megapixel at the input's shape by default")
    func sizes() throws {
        let plan = try SizePlanner.plan(input: PixelSize(width: 640, height: 360), for: .falQwenImageEdit2511)
        #expect(plan.target == PixelSize(width: 1360, height: 768) && plan.fields == [SizeField(name: "image_size", value: "1360x768")])
        #expect(try SizePlanner.plan(input: plan.input, for: .falQwenImageEdit2511, request: .size(PixelSize(width: 14142, height: 16))).target.width == 14142)
        #expect(throws: ProvidersError.self) {
            try SizePlanner.plan(input: plan.input, for: .falQwenImageEdit2511, request: .size(PixelSize(width: 14143, height: 16)))
        }
        #expect(throws: ProvidersError.self) {
            try SizePlanner.plan(input: plan.input, for: .falQwenImageEdit2511, request: .tier("1K", aspectRatio: nil))
        }
    }

    @Test("Price: $0.03 per output megapixel of 10^6 pixels, times num_images; $0.03 per image is the other reading")
    func price() {
        let one = CostEstimator.estimate(.falQwenImageEdit2511, outputSize: PixelSize(width: 1024, height: 1024))
        #expect(one.total == Decimal(string: "0.03145728") && one.alternativeTotal == Decimal(string: "0.03"))
        let two = CostEstimator.estimate(.falQwenImageEdit, outputSize: PixelSize(width: 1000, height: 1000), images: 2)
        #expect(two.total == Decimal(string: "0.06") && two.alternativeTotal == Decimal(string: "0.06"))
    }

    @Test("Every endpoint is in the catalog with its aliases, version and notes")
    func catalog() throws {
        #expect(try ProviderCatalog.profile(named: "fal").id == "fal-qwen-image-edit-2511")
        #expect(try ProviderCatalog.profile(named: "FAL-PLUS").version == .editPlus)
        #expect(try ProviderCatalog.profile(named: "fal-2509").version == .edit2509)
        #expect(try ProviderCatalog.profile(named: "fal-edit").model == "fal-ai/qwen-image-edit")
        for profile in Fal().profiles {
            #expect(profile.notes.count >= 9 && profile.flow == [.synchronous, .polling, .callback])
            #expect(ProviderSummary(profile).notes == profile.notes)
        }
    }
}

@Suite("fal.ai: answers, cancels and webhooks read")
struct FalAnswerTests {
    @Test("Queue statuses: IN_QUEUE and IN_PROGRESS are pending; COMPLETED means fetch the result; COMPLETED with an error failed")
    func statuses() throws {
        #expect(try read(#"{"status": "IN_QUEUE", "request_id": "r-1", "queue_position": 3, "status_url": "https://queue.fal.run/x"}"#)
            == .pending(requestID: "r-1", status: "IN_QUEUE"))
        #expect(try read(#"{"status": "IN_PROGRESS", "logs": null}"#, jobID: "r-1") == .pending(requestID: "r-1", status: "IN_PROGRESS"))
        #expect(try read(#"{"status": "COMPLETED", "request_id": "r-1", "metrics": {"inference_time": 2.5}}"#) == .finished(requestID: "r-1"))
        #expect(try read(#"{"status": "COMPLETED", "request_id": "r-1", "error": "CUDA out of memory"}"#)
            == .failed(message: "CUDA out of memory", requestID: "r-1"))
        #expect(Fal().reportedDuration(["metrics": ["inference_time": 2.5]]) == 2.5)
        #expect(Fal().reportedDuration(["metrics": ["inference_time": -1]]) == nil)
    }

    @Test("The output: images[].url, data URIs with sync_mode; an output without images is an error")
    func output() throws {
        let png = Data([0x89, 0x50, 0x4E, 0x47, 9])
        let outcome = try read("""
            {"images": [{"url": "https://v3.fal.media/files/a.png", "width": 1024, "height": 768, "content_type": "image/png"},
                        {"url": "\(DataURI.make(png, format: .png))"}], "seed": 1, "prompt": "p", "has_nsfw_concepts": [false, false]}
            """, jobID: "r-2")
        #expect(outcome == .completed(images: [.url("https://v3.fal.media/files/a.png"), .inline(png)], reportedCost: nil, requestID: "r-2"))
        #expect(throws: ProvidersError.self) { try read(#"{"images": [], "seed": 1}"#) }
    }

    @Test("Errors: validation 422 in its detail list, 401, and a failed run's result")
    func errors() throws {
        let validation = try read("""
            {"detail": [{"loc": ["body", "num_images"], "msg": "Input should be less than or equal to 4", "type": "less_than_equal"},
                        {"loc": ["body", "image_size", "width"], "msg": "too large", "type": "less_than_equal"}]}
            """, status: 422)
        #expect(validation == .failed(
            message: "fal-qwen-image-edit-2511 answered HTTP 422: num_images: Input should be less than or equal to 4; image_size.width: too large",
            requestID: nil))
        #expect(try read(#"{"detail": "Unauthorized"}"#, status: 401) == .failed(message: "fal-qwen-image-edit-2511 answered HTTP 401: Unauthorized", requestID: nil))
    }

    @Test("Webhook deliveries: OK carries the output, ERROR the error, OK without a payload means fetch the result")
    func webhooks() throws {
        let ok = try read("""
            {"request_id": "r-3", "gateway_request_id": "r-3", "status": "OK",
             "payload": {"images": [{"url": "https://v3.fal.media/files/b.jpeg"}], "seed": 5}}
            """)
        #expect(ok == .completed(images: [.url("https://v3.fal.media/files/b.jpeg")], reportedCost: nil, requestID: "r-3"))
        let error = try read("""
            {"request_id": "r-3", "gateway_request_id": "r-3", "status": "ERROR", "error": "Invalid status code: 422",
             "payload": {"detail": [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}]}}
            """)
        #expect(error == .failed(message: "Invalid status code: 422: prompt: Field required", requestID: "r-3"))
        #expect(try read(#"{"request_id": "r-3", "status": "OK", "payload": null, "payload_error": "too large"}"#) == .finished(requestID: "r-3"))
    }

    @Test("Cancel answers read by their word, whatever the status code: OK before it ran, later ones may be billed")
    func cancels() {
        let host = Fal()
        let profile = ProviderProfile.falQwenImageEdit2511
        func cancel(_ body: String, _ status: Int) -> CancelOutcome { host.readCancel(Data(body.utf8), status: status, for: profile) }
        #expect(cancel(#"{"status": "OK"}"#, 200) == .cancelledBeforeRunning)
        #expect(cancel(#"{"status": "CANCELLATION_REQUESTED"}"#, 202) == .tooLate(status: "CANCELLATION_REQUESTED"))
        #expect(cancel(#"{"status": "CANCELLATION_REQUESTED"}"#, 200) == .tooLate(status: "CANCELLATION_REQUESTED"))
        #expect(cancel(#"{"status": "ALREADY_COMPLETED"}"#, 400) == .tooLate(status: "ALREADY_COMPLETED"))
        #expect(cancel(#"{"success": true}"#, 200) == .tooLate(status: "success"))
        #expect(cancel(#"{"status": "NOT_FOUND"}"#, 404) == .refused(message: #"fal-qwen-image-edit-2511 answered HTTP 404: "{"status": "NOT_FOUND"}""#))
        if case .refused = cancel(#"{"success": false}"#, 200) {} else { Issue.record("success false was not a refusal") }
        if case .refused = cancel(#"{"status": "OK"}"#, 500) {} else { Issue.record("a 500 was not a refusal") }
    }
}

@Suite("fal.ai: webhook signatures")
struct FalSignatureTests {
    let key = Curve25519.Signing.PrivateKey()
    let body = Data(#"{"request_id": "r-9", "status": "OK", "payload": {"images": []}}"#.utf8)
    let now = Date(timeIntervalSince1970: 1_700_000_000)

    /// A JWKS holding `keys`, base64url without padding.
    func keySet(_ keys: [Curve25519.Signing.PublicKey]) -> Data {
        let entries = keys.map { key -> [String: String] in
            let x = key.rawRepresentation.base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            return ["kty": "OKP", "crv": "Ed25519", "x": x]
        }
        return (try? JSONSerialization.data(withJSONObject: ["keys": entries])) ?? Data()
    }

    /// The four headers of a delivery of `body` signed at `time` with `key`.
    func headers(_ body: Data, at time: Date, key: Curve25519.Signing.PrivateKey, requestID: String = "r-9") throws -> [String: String] {
        let timestamp = String(Int(time.timeIntervalSince1970))
        // The message written out here by hand: request id, user id, time, hex SHA-256 of the body.
        let digest = SHA256.hash(data: body).map { String(format: "%02x", $0) }.joined()
        let message = Data("\(requestID)\nuser-1\n\(timestamp)\n\(digest)".utf8)
        let signature = try key.signature(for: message).map { String(format: "%02x", $0) }.joined()
        return [
            "x-fal-webhook-request-id": requestID, "x-fal-webhook-user-id": "user-1", "x-fal-webhook-timestamp": timestamp,
            "x-fal-webhook-signature": signature,
        ]
    }

    func verify(_ headers: [String: String], _ body: Data, now: Date, keys: Data) throws -> SignedDelivery? {
        let unkeyed = try #require(Fal().callbackVerifier(secret: "https://keys.example/jwks.json"))
        #expect(unkeyed.keySetURL == "https://keys.example/jwks.json")
        guard let check = unkeyed.verifying(withKeySet: keys) else { return nil }
        #expect(check.keySetURL == nil && check.signatureHeader == "X-Fal-Webhook-Signature")
        return check.verify(header: { headers[$0.lowercased()] }, body: body, now: now)
    }

    @Test("A delivery signed with a key of the set, within 300 s, is accepted with its time and digest")
    func accepted() throws {
        let signed = try headers(body, at: now, key: key)
        let other = Curve25519.Signing.PrivateKey().publicKey
        let delivery = try verify(signed, body, now: now.addingTimeInterval(299), keys: keySet([other, key.publicKey]))
        #expect(delivery == SignedDelivery(signedAt: now, body: body))
        #expect(try verify(signed, body, now: now.addingTimeInterval(-299), keys: keySet([key.publicKey])) != nil)
    }

    @Test("Stale, early, tampered, re-addressed, wrongly keyed or unsigned deliveries are refused")
    func refused() throws {
        let keys = keySet([key.publicKey])
        let signed = try headers(body, at: now, key: key)
        #expect(try verify(signed, body, now: now.addingTimeInterval(301), keys: keys) == nil)
        #expect(try verify(signed, body, now: now.addingTimeInterval(-301), keys: keys) == nil)
        var tampered = body
        tampered[tampered.count - 3] = UInt8(ascii: "x")
        #expect(try verify(signed, tampered, now: now, keys: keys) == nil)
        var readdressed = signed
        readdressed["x-fal-webhook-request-id"] = "r-10"
        #expect(try verify(readdressed, body, now: now, keys: keys) == nil)
        var retimed = signed
        retimed["x-fal-webhook-timestamp"] = String(Int(now.timeIntervalSince1970) + 1)
        #expect(try verify(retimed, body, now: now, keys: keys) == nil)
        #expect(try verify(signed, body, now: now, keys: keySet([Curve25519.Signing.PrivateKey().publicKey])) == nil)
        for name in signed.keys {
            var missing = signed
            missing[name] = nil
            #expect(try verify(missing, body, now: now, keys: keys) == nil, "without \(name)")
        }
        var garbled = signed
        garbled["x-fal-webhook-signature"] = String(repeating: "zz", count: 64)
        #expect(try verify(garbled, body, now: now, keys: keys) == nil)
    }

    @Test("A key set with no Ed25519 key gives no check")
    func emptyKeySet() throws {
        let unkeyed = try #require(Fal().callbackVerifier(secret: "https://keys.example/jwks.json"))
        #expect(unkeyed.verifying(withKeySet: Data(#"{"keys": [{"kty": "RSA", "n": "abc"}]}"#.utf8)) == nil)
        #expect(unkeyed.verifying(withKeySet: Data("not json".utf8)) == nil)
        #expect(FalWebhookSignature.keys(fromKeySet: keySet([key.publicKey])).map(\.rawRepresentation) == [key.publicKey.rawRepresentation])
    }

    @Test("The emulator signs with the key it publishes; fal's own key set is the default, QIE_FAL_JWKS_URL overrides")
    func emulatorSigns() throws {
        let host = Fal()
        let delivery = Data(#"{"request_id": "r-1", "status": "OK"}"#.utf8)
        let sent = host.emulatedCallbackHeaders(for: delivery, secret: "s", at: now)
        let headers = Dictionary(uniqueKeysWithValues: sent.map { ($0.0.lowercased(), $0.1) })
        #expect(headers["x-fal-webhook-request-id"] == "r-1")
        let published = try #require(host.emulatedDocuments(secret: "s").first)
        #expect(published.path == "/.well-known/jwks.json")
        let document = try JSONSerialization.data(withJSONObject: published.body)
        #expect(try verify(headers, delivery, now: now, keys: document) != nil)
        #expect(try verify(headers, delivery, now: now, keys: JSONSerialization.data(withJSONObject: host.emulatedDocuments(secret: "t")[0].body)) == nil)
        let callback = try #require(ProviderProfile.falQwenImageEdit2511.callback)
        #expect(callback.secretVariable == "QIE_FAL_JWKS_URL" && callback.defaultSecret == "https://rest.alpha.fal.ai/.well-known/jwks.json")
        #expect(callback.idField == "request_id")
    }
}
