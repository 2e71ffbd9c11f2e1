// The cockpit updates itself in place. While the page is visible it asks for its live part
// (#cockpit-live's data-live-url) every data-refresh-seconds (15), sending the last ETag: an
// unchanged cockpit answers 304 and nothing moves; a changed one is merged into the page node by
// node, so what the operator opened (any <details>), the focus and the scroll stay as they were.
// Hidden, it stops asking; shown again, it asks at once if a check is due. Plain polling: no request
// waits on the server. Without a script the page reloads itself every 30 s (<noscript> in its head).
(() => {
    "use strict";
    const live = document.getElementById("cockpit-live");
    const line = document.querySelector(".cockpit-updated");
    if (!live || !line) return;
    const MAX_WAIT_SECONDS = 300; // after failures the wait doubles up to this
    const token = document.querySelector("input[name=csrfmiddlewaretoken]")?.value || "";
    let store = null;
    try { store = window.sessionStorage; } catch (e) { /* storage off: sections just close on a reload */ }
    let etag = null, timer = 0, lastCheck = performance.now(), failures = 0, stopped = false, busy = false;
    let lastTime = line.querySelector(".updated-at")?.textContent || "";

    const seconds = () => Math.max(0.1, Number(live.dataset.refreshSeconds) || 15);
    const wait = () => Math.min(seconds() * 2 ** failures, Math.max(seconds(), MAX_WAIT_SECONDS));

    // Opened sections also stay open through a reload by hand: remembered for this tab, by bot and section.
    const remembered = (d) => "cockpit-open:" + d.getAttribute("data-remember");
    const restore = (root) => {
        if (!store || !root.querySelectorAll) return;
        for (const d of root.querySelectorAll("details[data-remember]")) {
            if (store.getItem(remembered(d)) === "1") d.open = true;
        }
    };
    document.addEventListener("toggle", (event) => {
        const d = event.target;
        if (!store || d.nodeName !== "DETAILS" || !d.hasAttribute("data-remember")) return;
        if (d.open) store.setItem(remembered(d), "1"); else store.removeItem(remembered(d));
    }, true);

    // --- merging the new part into the page ----------------------------------------------------
    const keyOf = (n) => n.nodeType !== 1 ? "" :
        n.id || n.getAttribute("data-bot") || n.getAttribute("data-remember") || "";
    const same = (a, b) => a.nodeType === b.nodeType && a.nodeName === b.nodeName && keyOf(a) === keyOf(b);
    // What the operator changes stays: whether a section (any <details>, a <dialog>) is open; what a
    // form holds (its values are properties, never touched here); the page's CSRF token in its forms
    // (the part carries a placeholder, see MonitorAdminSite.cockpit_live).
    const isToken = (el) => el.nodeName === "INPUT" && el.getAttribute("name") === "csrfmiddlewaretoken";
    const kept = (el, name) => name === "open" || (name === "value" && isToken(el));

    function arrived(node) {
        if (node.nodeType !== 1) return;
        for (const input of [node, ...node.querySelectorAll("input")]) if (isToken(input)) input.value = token;
        restore(node);
    }

    function morph(current, next) {
        if (current.nodeType !== 1) {
            if (current.nodeValue !== next.nodeValue) current.nodeValue = next.nodeValue;
            return;
        }
        for (const { name } of [...current.attributes]) {
            if (!next.hasAttribute(name) && !kept(current, name)) current.removeAttribute(name);
        }
        for (const { name, value } of [...next.attributes]) {
            if (current.getAttribute(name) !== value && !kept(current, name)) current.setAttribute(name, value);
        }
        morphChildren(current, next);
    }

    function morphChildren(current, next) {
        let spot = current.firstChild;
        for (const node of [...next.childNodes]) {
            let match = null;
            if (keyOf(node)) {
                for (let c = spot; c; c = c.nextSibling) if (same(c, node)) { match = c; break; }
            } else if (spot && same(spot, node)) {
                match = spot;
            }
            if (match) {
                if (match !== spot) current.insertBefore(match, spot);
                morph(match, node);
                spot = match.nextSibling;
            } else {
                current.insertBefore(node, spot);
                arrived(node);
            }
        }
        while (spot) {
            const gone = spot;
            spot = spot.nextSibling;
            current.removeChild(gone);
        }
    }

    // --- what the line under the part says ----------------------------------------------------
    const zone = line.getAttribute("data-time-zone") || undefined;
    function clock(date) {
        try {
            const parts = {};
            for (const p of new Intl.DateTimeFormat("en-US", {
                timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
                minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short",
            }).formatToParts(date)) parts[p.type] = p.value;
            return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`;
        } catch (e) {
            return date.toLocaleString();
        }
    }
    function say(words, problem, link) {
        line.textContent = words;
        if (link) {
            const a = document.createElement("a");
            a.href = window.location.href;
            a.textContent = link;
            line.append(" — ", a, ".");
        }
        if (problem) live.setAttribute("data-problem", problem); else live.removeAttribute("data-problem");
        line.classList.toggle("cockpit-stale", Boolean(problem));
    }

    // --- asking --------------------------------------------------------------------------------
    function schedule(ms) {
        clearTimeout(timer);
        timer = setTimeout(check, Math.max(0, ms));
    }

    async function check() {
        timer = 0;
        if (stopped || busy || document.visibilityState === "hidden") return;
        busy = true;
        lastCheck = performance.now();
        try {
            const headers = etag ? { "If-None-Match": etag } : {};
            // redirect "manual": an expired session's redirect to the login page is not taken for the part.
            const response = await fetch(live.dataset.liveUrl, {
                headers, credentials: "same-origin", redirect: "manual", cache: "no-store",
            });
            if (response.type === "opaqueredirect" || response.status === 401 || response.status === 403) {
                stopped = true;
                say("Signed out", "Signed out: these figures are no longer updated", "reload");
                return;
            }
            if (response.status === 200) {
                const fresh = document.createElement("template");
                fresh.innerHTML = await response.text();
                morphChildren(live, fresh.content);
                etag = response.headers.get("ETag");
            } else if (response.status !== 304) {
                throw new Error(`answered ${response.status}`);
            }
            failures = 0;
            const date = new Date(response.headers.get("Date") || Date.now());
            lastTime = clock(Number.isNaN(date.getTime()) ? new Date() : date);
            say(`Updated ${lastTime}; updates every ${seconds()} s.`);
        } catch (error) {
            failures += 1;
            const words = `Not updated since ${lastTime}; trying again in ${Math.round(wait())} s.`;
            say(words, words);
        } finally {
            busy = false;
            if (!stopped && document.visibilityState !== "hidden") schedule(wait() * 1000);
        }
    }

    document.addEventListener("visibilitychange", () => {
        if (stopped) return;
        if (document.visibilityState === "hidden") {
            clearTimeout(timer);
            timer = 0;
        } else if (!busy) {
            schedule(wait() * 1000 - (performance.now() - lastCheck));
        }
    });

    restore(live);
    say(`Updated ${lastTime}; updates every ${seconds()} s.`);
    schedule(seconds() * 1000);
})();
