import Foundation
import QieProviders
import Testing

/// A request built for `profile` from an input of `input` pixels.
private func built(
    _ profile: ProviderProfile, _ request: EditRequest, input: PixelSize = PixelSize(width: 1000, height: 750),
    size: SizeRequest = .automatic
) throws -> (BuiltRequest, Data) {
    let plan = try SizePlanner.plan(input: input, for: profile, request: size)
    let request = try RequestBuilder.build(request, plan: plan, for: profile, apiKey: "sk-test-SECRET")
    return (request, try request.body.data())
}

private func json(_ data: Data) throws -> NSDictionary {
    try #require(try JSONSerialization.jsonObject(with: data) as? NSDictionary)
}

private func json(_ text: String) throws -> NSDictionary { try json(Data(text.utf8)) }

private func read(_ text: String, status: Int = 200, _ profile: ProviderProfile = .dashscopeQwenImageEditPlus) throws
    -> ResponseOutcome
{
    try ResponseReader.read(Data(text.utf8), status: status, from: profile)
}

@Suite("Alibaba Cloud Model Studio (DashScope)")
struct DashScopeTests {
    static let route = "https://dashscope-intl.aliyuncs.com/api/v1/services/aigc/multimodal-generation/generation"

    @Test("qwen-image-edit-plus: the document's body, field for field: images then the text, n, negative_prompt, prompt_extend false, watermark false, seed")
    func plusBody() throws {
        let png = Data([0x89, 0x50, 0x4E, 0x47, 1, 2, 3])
        let request = EditRequest(
            prompt: "Put the hat from Image 2 on the person in Image 1",
            images: [.bytes(png, format: .png, filename: "input.png"), .url("https://example.com/hat.jpg")],
            outputFormat: .png, negativePrompt: "blur", seed: 42, numImages: 2)
        let (sent, data) = try built(.dashscopeQwenImageEditPlus, request)
        let uri = DataURI.make(png, format: .png)
        #expect(try json(data) == json("""
            {"model": "qwen-image-edit-plus",
             "input": {"messages": [{"role": "user", "content": [
                {"image": "\(uri)"}, {"image": "https://example.com/hat.jpg"},
                {"text": "Put the hat from Image 2 on the person in Image 1"}]}]},
             "parameters": {"n": 2, "negative_prompt": "blur", "prompt_extend": false, "watermark": false, "seed": 42}}
            """))
        // Members in the document's order; no output format field anywhere.
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.hasPrefix(#"{"model":"qwen-image-edit-plus","input":{"messages":[{"role":"user","content":[{"image":"data:image/png;base64,"#))
        #expect(text.hasSuffix(#""parameters":{"n":2,"negative_prompt":"blur","prompt_extend":false,"watermark":false,"seed":42}}"#))
        #expect(!text.contains("format"))
        #expect(sent.method == "POST" && sent.url == Self.route)
        #expect(sent.headers.contains { $0 == ("Authorization", "Bearer sk-test-SECRET") })
        #expect(sent.headers.contains { $0 == ("Content-Type", "application/json") })
        #expect(sent.redactedHeaders.contains { $0 == ("Authorization", "Bearer ***") })
        #expect(sent.emulations.isEmpty && sent.nativeFormat == .png)
        #expect(try sent.body.contentLength() == data.count)
    }

    @Test("qwen-image-edit-plus: size W*H only when asked; other formats asked as PNG and converted locally")
    func plusSizeAndFormat() throws {
        let request = EditRequest(prompt: "night", images: [.url("https://example.com/a.jpg")], outputFormat: .webp)
        let (sent, data) = try built(.dashscopeQwenImageEditPlus, request, size: .size(PixelSize(width: 1024, height: 1536)))
        #expect(try json(data)["parameters"] as? NSDictionary == json(#"{"size": "1024*1536", "prompt_extend": false, "watermark": false}"#))
        #expect(sent.emulations == [.convertOutput(from: .png, to: .webp)] && sent.nativeFormat == .png)
        // Left to the planner, no size is sent: the output takes the prepared input's shape.
        let (_, automatic) = try built(.dashscopeQwenImageEditPlus, request)
        #expect(try json(automatic)["parameters"] as? NSDictionary == json(#"{"prompt_extend": false, "watermark": false}"#))
    }

    @Test("qwen-image-edit: no n, size or prompt_extend; --num-images repeats the request")
    func editBody() throws {
        let request = EditRequest(prompt: "make it snow", images: [.url("https://example.com/a.jpg")], seed: 0, numImages: 3)
        let (sent, data) = try built(.dashscopeQwenImageEdit, request)
        #expect(try json(data) == json("""
            {"model": "qwen-image-edit",
             "input": {"messages": [{"role": "user", "content": [{"image": "https://example.com/a.jpg"}, {"text": "make it snow"}]}]},
             "parameters": {"watermark": false, "seed": 0}}
            """))
        #expect(sent.url == Self.route)
        #expect(sent.emulations == [.repeatRequest(times: 3)])
    }

    @Test("What the host would cut or refuse is refused before sending, naming the setting, the limit and what was given")
    func refusedBeforeSending() throws {
        let image = PayloadImage.url("https://example.com/a.jpg")
        let plus = ProviderProfile.dashscopeQwenImageEditPlus
        let tall = SizeRequest.size(PixelSize(width: 1024, height: 1536))
        let cases: [(ProviderProfile, EditRequest, SizeRequest, Setting, String)] = [
            (plus, EditRequest(prompt: String(repeating: "é", count: 801), images: [image]), .automatic, .prompt,
             "prompt must be at most 800 characters on dashscope-qwen-image-edit-plus, which would cut the rest; got 801 characters"),
            (plus, EditRequest(prompt: "p", images: [image], negativePrompt: String(repeating: "x", count: 501)), .automatic, .negativePrompt,
             "negativePrompt must be at most 500 characters"),
            (.dashscopeQwenImageEdit, EditRequest(prompt: "p", images: [image], seed: -1), .automatic, .seed,
             "seed must be from 0 to 2147483647 on dashscope-qwen-image-edit; got -1"),
            (plus, EditRequest(prompt: "p", images: [image], seed: 2_147_483_648), .automatic, .seed, "got 2147483648"),
            (plus, EditRequest(prompt: "p", images: [image], numImages: 7), .automatic, .numImages,
             "numImages must be from 1 to 6 on dashscope-qwen-image-edit-plus; got 7"),
            (plus, EditRequest(prompt: "p", images: [image], numImages: 2), tall, .size,
             "size 1024*1536 goes only with one image per request on dashscope-qwen-image-edit-plus"),
        ]
        for (profile, request, size, setting, message) in cases {
            let error = #expect(throws: ProvidersError.self) { try built(profile, request, size: size) }
            #expect(error?.setting?.setting == setting, "\(message)")
            #expect(error?.description.contains(message) == true, "\(error?.description ?? "no error") should contain \(message)")
        }
        // The limits themselves pass: 800 characters, 500, seeds 0 and 2^31-1, six images, a size with one.
        _ = try built(plus, EditRequest(prompt: String(repeating: "é", count: 800), images: [image], negativePrompt: String(repeating: "x", count: 500), seed: 2_147_483_647, numImages: 6))
        _ = try built(plus, EditRequest(prompt: "p", images: [image, image, image], seed: 0), size: tall)
        // Four images, and sizes out of range or on the model without one, are refused as for any endpoint.
        #expect(throws: ProvidersError.self) { try built(plus, EditRequest(prompt: "p", images: Array(repeating: image, count: 4))) }
        let outside = #expect(throws: ProvidersError.self) {
            try built(plus, EditRequest(prompt: "p", images: [image]), size: .size(PixelSize(width: 2049, height: 1024)))
        }
        #expect(outside?.kind == .unsupportedSize)
        let noSize = #expect(throws: ProvidersError.self) {
            try built(.dashscopeQwenImageEdit, EditRequest(prompt: "p", images: [image]), size: tall)
        }
        #expect(noSize?.description.contains("dashscope-qwen-image-edit does not take size 1024x1536; it accepts about 1 megapixel") == true, "\(noSize?.description ?? "")")
    }

    @Test("Planned sizes: about a megapixel at the input's shape (the document's 1248x832 at 3:2), kept from 1:4 to 4:1; a size asked is sent")
    func plans() throws {
        let plus = ProviderProfile.dashscopeQwenImageEditPlus
        let threeTwo = try SizePlanner.plan(input: PixelSize(width: 3000, height: 2000), for: plus)
        #expect(threeTwo.target == PixelSize(width: 1248, height: 832) && threeTwo.expectedOutput == threeTwo.target && threeTwo.fields.isEmpty)
        let banner = try SizePlanner.plan(input: PixelSize(width: 5000, height: 500), for: .dashscopeQwenImageEdit)
        #expect(banner.target == PixelSize(width: 2048, height: 512) && banner.paddingFraction > 0)
        let ratio = try SizePlanner.plan(input: PixelSize(width: 400, height: 300), for: .dashscopeQwenImageEdit, request: .aspectRatio(AspectRatio(16, 9)))
        #expect(ratio.target == PixelSize(width: 1360, height: 768) && ratio.fields.isEmpty)
        let asked = try SizePlanner.plan(input: PixelSize(width: 400, height: 300), for: plus, request: .size(PixelSize(width: 512, height: 2048)))
        #expect(asked.target == PixelSize(width: 512, height: 2048) && asked.fields == [SizeField(name: "size", value: "512*2048")])
        #expect(plus.sizes.summary.hasPrefix("any W*H from 512 to 2048 a side, or by default about 1 megapixel at the last image's aspect ratio"))
    }

    @Test("Answers: every image of output.choices[].message.content[], request_id as the id; errors in the host's words")
    func answers() throws {
        let ok = try read("""
            {"output": {"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": [
                {"image": "https://dashscope-result-sh.oss-cn-shanghai.aliyuncs.com/1.png?Expires=1"},
                {"image": "https://dashscope-result-sh.oss-cn-shanghai.aliyuncs.com/2.png?Expires=1"}]}}]},
             "usage": {"width": 1248, "height": 832, "image_count": 2}, "request_id": "7f1c2d3e-0000-4000-8000-000000000001"}
            """)
        #expect(ok == .completed(
            images: [
                .url("https://dashscope-result-sh.oss-cn-shanghai.aliyuncs.com/1.png?Expires=1"),
                .url("https://dashscope-result-sh.oss-cn-shanghai.aliyuncs.com/2.png?Expires=1"),
            ], reportedCost: nil, requestID: "7f1c2d3e-0000-4000-8000-000000000001"))
        #expect(try read(#"{"code": "InvalidParameter", "message": "The size is not match the allowed size", "request_id": "r1"}"#, status: 400)
            == .failed(message: "dashscope-qwen-image-edit-plus answered HTTP 400: The size is not match the allowed size", requestID: nil))
        #expect(try read(#"{"code": "InvalidApiKey", "message": "Invalid API-key provided.", "request_id": "r2"}"#, status: 401, .dashscopeQwenImageEdit)
            == .failed(message: "dashscope-qwen-image-edit answered HTTP 401: Invalid API-key provided.", requestID: nil))
        #expect(try read(#"{"code": "DataInspectionFailed", "message": "Input data may contain inappropriate content.", "request_id": "r3"}"#)
            == .failed(message: "DataInspectionFailed: Input data may contain inappropriate content.", requestID: "r3"))
        let empty = #expect(throws: ProvidersError.self) {
            try read(#"{"output": {"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": []}}]}, "request_id": "r4"}"#)
        }
        #expect(empty?.message.contains("no image at output.choices[].message.content[].image") == true, "\(empty?.message ?? "")")
        // A task with no result (the host's asynchronous shape) is no success.
        #expect(throws: ProvidersError.self) { try read(#"{"output": {"task_id": "t", "task_status": "PENDING"}, "request_id": "r5"}"#) }
    }

    @Test("The emulator's answers read back: its success as results, its errors with the code the status implies")
    func emulatedAnswers() throws {
        let profile = ProviderProfile.dashscopeQwenImageEditPlus
        var results = EmulatedResults(urls: ["http://127.0.0.1:1/files/a.png", "http://127.0.0.1:1/files/b.png"], inline: [], prompt: "p", returnsBase64: false, cost: 0.06, reportedCost: nil)
        results.outputSize = PixelSize(width: 1184, height: 880)
        let success = profile.host.emulatedSuccess(results, for: profile)
        let data = try JSONSerialization.data(withJSONObject: success)
        guard case .completed(let images, _, let id) = try ResponseReader.read(data, status: 200, from: profile) else {
            Issue.record("\(success)")
            return
        }
        #expect(images == results.urls.map { .url($0) } && id?.count == 36)
        let usage = try #require(success["usage"] as? [String: Int])
        #expect(usage == ["width": 1184, "height": 880, "image_count": 2])
        for (status, code) in [(400, "InvalidParameter"), (401, "InvalidApiKey"), (429, "Throttling"), (500, "InternalError")] {
            let error = profile.host.emulatedError("m", param: nil, status: status, for: profile)
            #expect(error["code"] as? String == code && error["message"] as? String == "m" && error["request_id"] is String)
        }
    }

    @Test("In the catalog: ids and aliases, prices per image, synchronous only, the versions they run, every assumption named")
    func catalog() throws {
        #expect(try ProviderCatalog.profile(named: "dashscope").id == "dashscope-qwen-image-edit-plus")
        #expect(try ProviderCatalog.profile(named: "DashScope-Edit").id == "dashscope-qwen-image-edit")
        let plus = ProviderProfile.dashscopeQwenImageEditPlus
        let edit = ProviderProfile.dashscopeQwenImageEdit
        #expect(plus.version == .editPlus && edit.version == .edit)
        #expect(plus.flow == [.synchronous] && plus.defaultRunFlow == .synchronous && plus.routes.poll == nil && plus.routes.cancel == nil)
        let size = PixelSize(width: 1184, height: 880)
        #expect(CostEstimator.estimate(plus, outputSize: size, images: 2).total == Decimal(string: "0.06"))
        #expect(CostEstimator.estimate(edit, outputSize: size).total == Decimal(string: "0.045"))
        #expect(plus.pricing.summary == "$0.03 per image" && edit.pricing.summary == "$0.045 per image")
        let notes = (plus.notes + edit.notes).joined(separator: "\n")
        for assumption in [
            "QIE_DASHSCOPE_BASE_URL=https://dashscope.aliyuncs.com", "7.339 CNY per USD", "prompt_extend is always sent false",
            "watermark is always sent false", "only with n = 1", "refused over 800 characters", "InvalidApiKey (401)",
            "Throttling (429", "unconfirmed", "PNG only",
        ] {
            #expect(notes.contains(assumption), "notes name \(assumption)")
        }
        #expect(ProviderSummary.all.filter { $0.id.hasPrefix("dashscope-") }.map(\.notes) == [plus.notes, edit.notes])
    }
}
