import Crypto
import Foundation

/// The gateway page's document: HTML, CSS and JavaScript inline, no
/// external assets and no data. The script reads the JSON routes with the
/// gateway key it takes from the URL's fragment (`/gateway#key=...`, which
/// browsers never send to the server) or from its field, and keeps it in
/// `sessionStorage` (this tab only) after removing it from the address bar.
/// Everything a request named (users, models) is written as text, never as
/// markup; the content security policy allows this script and style only.
enum GatewayPageHTML {
    static let style = #"""
        :root { color-scheme: light; --ink: #1d2330; --muted: #667085; --line: #e4e7ec; --ok: #067647; --warn: #b54708; --bad: #b42318; --accent: #3538cd; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #f6f7f9; }
        header { display: flex; gap: 16px; align-items: center; padding: 12px 24px; background: #fff; border-bottom: 1px solid var(--line); }
        header h1 { font-size: 18px; margin: 0; }
        header .meta { color: var(--muted); }
        header button { margin-left: auto; }
        main, #keybox { padding: 16px 24px; max-width: 1600px; }
        section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 18px; margin-bottom: 16px; }
        h2 { font-size: 15px; margin: 0 0 10px; }
        h3 { font-size: 13px; margin: 0 0 6px; color: var(--muted); font-weight: 600; }
        .cards { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 12px; }
        .card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; min-width: 150px; }
        .card .figure { font-size: 20px; font-weight: 650; }
        .card .label { color: var(--muted); font-size: 12px; }
        .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 16px; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { color: var(--muted); font-weight: 600; font-size: 12px; }
        td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
        .outcome { display: inline-block; padding: 0 6px; border-radius: 4px; font-weight: 600; white-space: nowrap; }
        .outcome.ok { color: var(--ok); background: #ecfdf3; }
        .outcome.warn { color: var(--warn); background: #fffaeb; }
        .outcome.bad { color: var(--bad); background: #fef3f2; }
        .risk { color: var(--bad); font-weight: 600; }
        .muted { color: var(--muted); }
        .scroll { overflow-x: auto; }
        #requests td { white-space: nowrap; }
        .thumbs img { height: 64px; margin-right: 4px; border-radius: 4px; border: 1px solid var(--line); }
        .bar { height: 8px; background: var(--line); border-radius: 4px; overflow: hidden; margin-top: 4px; }
        .bar div { height: 100%; background: var(--accent); }
        form label { display: block; margin: 6px 0; }
        input, select, textarea, button { font: inherit; }
        input, select, textarea { padding: 4px 6px; border: 1px solid #d0d5dd; border-radius: 6px; }
        textarea { width: 100%; min-height: 54px; }
        button { padding: 4px 12px; border-radius: 6px; border: 1px solid #d0d5dd; background: #fff; cursor: pointer; }
        button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
        button:disabled { opacity: .5; cursor: default; }
        #drop { border: 2px dashed #d0d5dd; border-radius: 8px; padding: 16px; text-align: center; color: var(--muted); }
        #drop.over { border-color: var(--accent); }
        #preview, #result img { max-width: 256px; max-height: 256px; margin: 6px 8px 0 0; border-radius: 4px; }
        .row { display: flex; gap: 16px; flex-wrap: wrap; align-items: end; }
        #status.error, .error { color: var(--bad); }
        #price { font-weight: 600; }
        """#

    static let script = #"""
        "use strict";
        const $ = (id) => document.getElementById(id);
        const keyName = "qie-gateway-key";
        const state = { key: null, filter: "", summary: null, image: null, thumbs: new Map() };

        function fail(message) {
          document.body.dataset.error = message;
          setStatus("The page failed: " + message, true);
        }
        window.addEventListener("error", (event) => fail(String(event.message)));
        window.addEventListener("unhandledrejection", (event) => fail(String((event.reason && event.reason.message) || event.reason)));

        function el(tag, attributes, ...children) {
          const node = document.createElement(tag);
          for (const [name, value] of Object.entries(attributes || {})) {
            if (value === null || value === undefined || value === false) continue;
            if (name === "class") node.className = value; else node.setAttribute(name, value === true ? "" : String(value));
          }
          for (const child of children) {
            if (child === null || child === undefined) continue;
            node.append(child instanceof Node ? child : document.createTextNode(String(child)));
          }
          return node;
        }
        function setStatus(text, isError) {
          const status = $("status");
          status.textContent = text;
          status.className = isError ? "error" : "muted";
        }
        function money(text) { return text === null || text === undefined ? "" : text === "unknown" ? "unknown" : "$" + text; }
        function seconds(value) { return value === null || value === undefined ? "" : value.toFixed(value < 10 ? 2 : 1) + " s"; }
        function duration(total) {
          if (total >= 2 * 86400) return Math.round(total / 86400) + " days";
          const hours = Math.floor(total / 3600), minutes = Math.floor((total % 3600) / 60);
          return hours > 0 ? hours + " h " + String(minutes).padStart(2, "0") + " min" : minutes + " min";
        }
        function outcomeClass(status) { return status >= 200 && status < 300 ? "ok" : status >= 400 && status < 499 ? "warn" : "bad"; }

        class ApiError extends Error {
          constructor(status, message) { super(message); this.status = status; }
        }
        async function api(path, options) {
          const headers = Object.assign({}, (options && options.headers) || {});
          if (state.key) headers["Authorization"] = "Bearer " + state.key;
          return fetch(path, Object.assign({}, options || {}, { headers, cache: "no-store" }));
        }
        async function json(path, options) {
          const response = await api(path, options);
          const body = await response.json().catch(() => ({}));
          if (!response.ok) throw new ApiError(response.status, (body.error && body.error.message) || "HTTP " + response.status);
          return body;
        }

        function readKey() {
          const found = /(?:^#|&)key=([^&]*)/.exec(location.hash);
          if (found) {
            sessionStorage.setItem(keyName, decodeURIComponent(found[1]));
            // The key leaves the address bar: it is not bookmarked, shared or kept in history.
            history.replaceState(null, "", location.pathname + location.search);
          }
          return sessionStorage.getItem(keyName);
        }

        function spendingTable(title, rows, empty) {
          const body = el("tbody");
          for (const row of rows) {
            body.append(el("tr", null,
              el("td", null, row.name == null ? empty : row.name),
              el("td", { class: "number" }, row.requests),
              el("td", { class: "number" }, money(row.cost_usd) + (row.unpriced ? " + " + row.unpriced + " unpriced" : "")),
              el("td", { class: "number" + (row.at_risk_usd !== "0" ? " risk" : "") }, row.at_risk_usd !== "0" ? money(row.at_risk_usd) : "")));
          }
          if (!rows.length) body.append(el("tr", null, el("td", { colspan: 4, class: "muted" }, "nothing yet today")));
          return el("div", null, el("h3", null, title), el("table", null,
            el("thead", null, el("tr", null, el("th", null, ""), el("th", { class: "number" }, "requests"),
              el("th", { class: "number" }, "spent"), el("th", { class: "number" }, "at risk"))), body));
        }
        function card(figure, label, extraClass) {
          return el("div", { class: "card" + (extraClass ? " " + extraClass : "") }, el("div", { class: "figure" }, figure), el("div", { class: "label" }, label));
        }
        function budgetRow(name, budget) {
          const limit = Number(budget.limit_usd), used = Number(budget.spent_usd) + Number(budget.in_flight_usd);
          const bar = el("div", { class: "bar" }, el("div"));
          bar.firstChild.style.width = Math.min(100, limit > 0 ? (used / limit) * 100 : 100).toFixed(1) + "%";
          return el("tr", null, el("td", null, name, bar), el("td", { class: "number" }, money(budget.limit_usd)),
            el("td", { class: "number" }, money(budget.spent_usd)), el("td", { class: "number" }, money(budget.in_flight_usd)),
            el("td", { class: "number" }, money(budget.left_usd)));
        }

        function renderSummary(summary) {
          state.summary = summary;
          $("day").textContent = "UTC day " + summary.day + " \u00b7 resets in " + duration(summary.resets_in_seconds);
          $("who").textContent = "you are " + summary.caller;
          const total = summary.total;
          $("totals").replaceChildren(
            card(money(total.cost_usd), "spent today" + (summary.key_filter ? " by " + summary.key_filter : "")),
            card(total.at_risk_usd !== "0" ? money(total.at_risk_usd) : "$0", "at risk (may have been billed)", total.at_risk_usd !== "0" ? "risk" : null),
            card(total.requests, "requests today"),
            card(total.unpriced, "edits without a price"));
          $("spending").replaceChildren(spendingTable("By key", summary.by_key, "(none)"),
            spendingTable("By model", summary.by_model, "(no model)"), spendingTable("By user", summary.by_user, "(no user)"));
          const filter = $("filter");
          const keys = new Set(summary.by_key.map((row) => row.name));
          if (state.filter) keys.add(state.filter);
          filter.replaceChildren(el("option", { value: "" }, "every key"), ...[...keys].sort().map((name) => el("option", { value: name, selected: name === state.filter }, name)));
          const budgets = summary.budgets, rows = el("tbody");
          if (budgets.per_day) rows.append(budgetRow("the whole gateway", budgets.per_day));
          for (const user of budgets.users) rows.append(budgetRow("user " + user.user, user));
          const notes = [];
          if (!budgets.per_day) notes.push("No daily budget across clients.");
          notes.push(budgets.per_user_per_day_usd ? "Each user may spend " + money(budgets.per_user_per_day_usd) + " a UTC day; a request without user is refused." : "No per-user budget.");
          $("budgets").replaceChildren(el("table", null, el("thead", null, el("tr", null, el("th", null, ""), el("th", { class: "number" }, "limit"),
            el("th", { class: "number" }, "spent"), el("th", { class: "number" }, "in flight"), el("th", { class: "number" }, "left"))), rows),
            el("p", { class: "muted" }, notes.join(" ")));
          const model = $("model"), chosen = model.value;
          model.replaceChildren(...summary.models.map((name, index) => el("option", { value: name, selected: chosen ? name === chosen : index === 0 }, name + (index === 0 ? " (default)" : ""))));
          $("lifetimes").textContent = "Requests are kept " + duration(summary.record_lifetime_seconds) + ", thumbnails " + duration(summary.file_lifetime_seconds) + ".";
        }

        async function thumbnail(path) {
          if (state.thumbs.has(path)) return state.thumbs.get(path);
          const response = await api(path);
          if (!response.ok) return null;
          const address = URL.createObjectURL(await response.blob());
          state.thumbs.set(path, address);
          return address;
        }
        function renderRequests(list) {
          const rows = [];
          const loads = [];
          for (const item of list.requests) {
            const thumbs = el("td", { class: "thumbs" });
            for (const path of item.thumbnails) {
              const image = el("img", { alt: "result of " + item.id });
              thumbs.append(image);
              loads.push(thumbnail(path).then((address) => { if (address) image.src = address; else image.remove(); }));
            }
            const model = item.model_asked && item.endpoint && item.model_asked !== item.endpoint ? item.model_asked + " \u2192 " + item.endpoint : item.endpoint || item.model_asked || "";
            const time = new Date(item.time);
            rows.push(el("tr", { "data-request": item.id },
              el("td", { title: item.id }, time.toISOString().slice(11, 19)),
              el("td", null, item.key), el("td", null, item.user == null ? "" : item.user),
              el("td", null, model), el("td", { class: "number" }, item.n), el("td", null, item.size || ""),
              el("td", null, el("span", { class: "outcome " + outcomeClass(item.status) }, item.outcome)), thumbs,
              el("td", { class: "number" }, money(item.cost_usd)),
              el("td", { class: "number risk" }, item.at_risk_usd ? money(item.at_risk_usd) : ""),
              el("td", { class: "number" }, seconds(item.queue_seconds)), el("td", { class: "number" }, seconds(item.endpoint_seconds)),
              el("td", { class: "number" }, seconds(item.seconds))));
          }
          if (!rows.length) rows.push(el("tr", null, el("td", { colspan: 13, class: "muted" }, "no requests yet")));
          $("requests").replaceChildren(...rows);
          return Promise.all(loads);
        }

        async function refresh() {
          const query = state.filter ? "?key=" + encodeURIComponent(state.filter) : "";
          try {
            const [summary, list] = await Promise.all([json("/gateway/api/summary" + query), json("/gateway/api/requests" + query)]);
            $("content").hidden = false;
            renderSummary(summary);
            await renderRequests(list);
            setStatus("Updated " + new Date().toLocaleTimeString() + ".", false);
            document.body.dataset.rendered = "yes";
          } catch (error) {
            if (!(error instanceof ApiError)) throw error;
            if (error.status === 401 || error.status === 403) {
              $("content").hidden = true;
              document.body.dataset.rendered = "refused";
            }
            setStatus(error.message, true);
          }
        }

        function showImage(file) {
          state.image = null;
          const preview = $("preview");
          preview.hidden = true;
          if (!file) return;
          const address = URL.createObjectURL(file);
          preview.onload = () => {
            state.image = { file, width: preview.naturalWidth, height: preview.naturalHeight };
            preview.hidden = false;
            quote();
          };
          preview.onerror = () => { $("price").textContent = "This file is not an image the browser can show."; };
          preview.src = address;
        }
        function fields() {
          return { model: $("model").value, size: $("size").value.trim() || "auto", n: $("n").value || "1", user: $("user").value.trim() };
        }
        async function quote() {
          $("send").disabled = !state.image;
          if (!state.image) return;
          const asked = fields();
          const query = new URLSearchParams({ model: asked.model, size: asked.size, n: asked.n, width: state.image.width, height: state.image.height });
          try {
            const price = await json("/gateway/api/price?" + query);
            $("price").textContent = (price.cost_usd ? "\u2248 $" + price.cost_usd : "price unknown") + " on " + price.endpoint + " (" + price.requests +
              " request" + (price.requests === 1 ? "" : "s") + "; sent at " + price.sent + ", delivered at " + price.output + ")";
            $("price").className = "";
          } catch (error) {
            if (!(error instanceof ApiError)) throw error;
            $("price").textContent = error.message;
            $("price").className = "error";
          }
        }
        async function send(event) {
          event.preventDefault();
          if (!state.image) return;
          const asked = fields(), form = new FormData();
          form.append("image", state.image.file, state.image.file.name || "image");
          form.append("prompt", $("prompt").value);
          form.append("model", asked.model);
          form.append("size", asked.size);
          form.append("n", asked.n);
          if (asked.user) form.append("user", asked.user);
          $("send").disabled = true;
          const result = $("result");
          result.replaceChildren(el("p", { class: "muted" }, "Editing\u2026"));
          try {
            const answer = await json("/v1/images/edits", { method: "POST", body: form });
            const type = "image/" + (answer.output_format === "jpeg" ? "jpeg" : answer.output_format);
            result.replaceChildren(el("p", null, "Done: " + money(answer.qie.cost_usd) + " on " + answer.qie.endpoint + ", " + answer.size + "."),
              ...answer.data.map((item) => el("img", { src: "data:" + type + ";base64," + item.b64_json, alt: "result" })));
          } catch (error) {
            if (!(error instanceof ApiError)) throw error;
            result.replaceChildren(el("p", { class: "error" }, "Refused (" + error.status + "): " + error.message));
          }
          $("send").disabled = false;
          await refresh();
        }

        function start() {
          state.key = readKey();
          $("key").value = state.key || "";
          $("keyform").addEventListener("submit", (event) => {
            event.preventDefault();
            state.key = $("key").value.trim() || null;
            if (state.key) sessionStorage.setItem(keyName, state.key); else sessionStorage.removeItem(keyName);
            refresh();
          });
          $("forget").addEventListener("click", () => {
            sessionStorage.removeItem(keyName);
            state.key = null;
            $("key").value = "";
            $("content").hidden = true;
            setStatus("The key is forgotten.", false);
          });
          $("refresh").addEventListener("click", () => refresh());
          $("filter").addEventListener("change", () => { state.filter = $("filter").value; refresh(); });
          $("file").addEventListener("change", () => showImage($("file").files[0]));
          const drop = $("drop");
          drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
          drop.addEventListener("dragleave", () => drop.classList.remove("over"));
          drop.addEventListener("drop", (event) => {
            event.preventDefault();
            drop.classList.remove("over");
            showImage(event.dataTransfer.files[0]);
          });
          for (const id of ["model", "size", "n"]) $(id).addEventListener("change", () => quote());
          $("try").addEventListener("submit", send);
          refresh();
          setInterval(() => { if (!document.hidden) refresh(); }, 30000);
        }
        start();
        """#

    static let body = #"""
        <header><h1>qie gateway</h1><span class="meta" id="day"></span><span class="meta" id="who"></span><button id="refresh" type="button">Refresh</button></header>
        <div id="keybox">
        <form id="keyform" class="row"><label>Gateway key <input id="key" type="password" autocomplete="off" size="40"></label><button type="submit">Use</button><button id="forget" type="button">Forget</button></form>
        <p id="status" class="muted">Loading…</p>
        </div>
        <main id="content" hidden>
        <section><h2>Today's spending</h2><div id="totals" class="cards"></div>
        <label>Requests of <select id="filter"><option value="">every key</option></select></label>
        <div id="spending" class="grid"></div></section>
        <section><h2>Budgets left</h2><div id="budgets"></div></section>
        <section><h2>Recent requests</h2><p class="muted" id="lifetimes"></p>
        <div class="scroll"><table><thead><tr><th>time (UTC)</th><th>key</th><th>user</th><th>model</th><th class="number">n</th><th>size</th><th>outcome</th><th>results</th><th class="number">cost</th><th class="number">at risk</th><th class="number">queue</th><th class="number">endpoint</th><th class="number">total</th></tr></thead><tbody id="requests"></tbody></table></div></section>
        <section><h2>Try an edit</h2>
        <form id="try">
        <div id="drop">Drop an image here, or choose one: <input id="file" type="file" accept="image/*"></div>
        <img id="preview" alt="the image to edit" hidden>
        <label>Prompt <textarea id="prompt" required placeholder="Make it night"></textarea></label>
        <div class="row"><label>Model <select id="model"></select></label>
        <label>Size <input id="size" list="sizes" value="auto" size="11"></label>
        <datalist id="sizes"><option value="auto"><option value="1024x1024"><option value="1024x1536"><option value="1536x1024"></datalist>
        <label>n <input id="n" type="number" min="1" max="10" value="1"></label>
        <label>User <input id="user" autocomplete="off"></label></div>
        <p id="price" class="muted">Choose an image to see its price.</p>
        <button id="send" class="primary" type="submit" disabled>Send</button>
        </form>
        <div id="result"></div></section>
        </main>
        """#

    /// The whole page.
    static let document = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer"><title>qie gateway</title><style>\(style)</style></head>
        <body>
        \(body)
        <script>\(script)</script>
        </body></html>
        """

    /// What the page may load and run: its own script and style (by their
    /// hashes), its own JSON routes, and images from them or made in it.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src '\(hash(script))'; style-src '\(hash(style))'; img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    private static func hash(_ text: String) -> String {
        "sha256-" + Data(SHA256.hash(data: Data(text.utf8))).base64EncodedString()
    }
}
