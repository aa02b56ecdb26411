// bucketfn console. The server renders every fragment; this script only fetches them with
// the API's bearer token, long-polls for live updates, and uploads files straight to the
// store with a presigned POST. No framework, no build step, nothing loaded from elsewhere.
"use strict";

(() => {
  const KEY = "bucketfn.console.token"; // sessionStorage: this tab, until it closes
  const MAX_ROWS = 200;
  const body = document.body;
  const $ = (id) => document.getElementById(id);
  const hints = { letter: $("letter").innerHTML };
  const state = { v: -1, seq: 0, lv: -1, generation: 0 };

  class Refused extends Error {} // 401: the token is missing or wrong

  const token = () => sessionStorage.getItem(KEY) || "";
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
  // A tab in the background stops polling, so the server stops watching for it.
  const visible = () =>
    new Promise((done) => {
      const check = () => {
        if (document.hidden) return;
        document.removeEventListener("visibilitychange", check);
        done();
      };
      document.addEventListener("visibilitychange", check);
      check();
    });
  const query = (params) => new URLSearchParams(params).toString();

  // One request to the API; a problem+json answer becomes an Error with its `detail`.
  async function call(method, path, data) {
    const headers = { Accept: "application/json, text/html" };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    const init = { method, headers, cache: "no-store" };
    if (data !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(data);
    }
    const response = await fetch(path, init);
    if (response.ok) return response;
    let detail = `${response.status} ${response.statusText}`;
    try {
      const problem = await response.json();
      detail = problem.detail || problem.title || detail;
    } catch (_) {
      // not a problem document: keep the status line
    }
    throw response.status === 401 ? new Refused(detail) : new Error(detail);
  }

  // Times come in UTC; show them in the reader's zone.
  function localTimes(root) {
    for (const el of root.querySelectorAll("time[datetime]")) {
      const at = new Date(el.dateTime);
      if (!Number.isNaN(at.getTime())) {
        el.textContent = at.toLocaleTimeString([], { hour12: false });
        el.title = at.toString();
      }
    }
  }

  function place(el, html) {
    el.innerHTML = html; // rendered and escaped by the server's templates
    localTimes(el);
  }

  function text(tag, cls, content) {
    const el = document.createElement(tag);
    el.className = cls;
    el.textContent = content;
    return el;
  }

  function setLive(name, label) {
    const badge = $("live");
    badge.dataset.state = name;
    badge.textContent = label;
  }

  // Signing in and out.
  function signedIn() {
    $("login").hidden = true;
    $("console").hidden = false;
    $("signout").hidden = body.dataset.auth !== "required";
    follow();
  }

  function signedOut(message) {
    state.generation += 1; // ends the poll loop
    sessionStorage.removeItem(KEY);
    $("console").hidden = true;
    $("login").hidden = false;
    $("signout").hidden = true;
    $("login-error").textContent = message;
    setLive("off", "not connected");
    $("token").focus();
  }

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $("token").value.trim());
    $("token").value = "";
    signedIn();
  });
  $("signout").addEventListener("click", () => signedOut(""));

  // Live updates: each poll answers as soon as anything changed since the version we have.
  async function follow() {
    const mine = ++state.generation;
    Object.assign(state, { v: -1, seq: 0, lv: -1 });
    let pause = 500;
    while (mine === state.generation) {
      await visible();
      try {
        const response = await call("GET", `/console/updates?${query({ v: state.v, seq: state.seq, lv: state.lv })}`);
        const update = await response.json();
        if (mine !== state.generation) return;
        apply(update);
        pause = 500;
      } catch (err) {
        if (mine !== state.generation) return;
        if (err instanceof Refused) return signedOut(`The token was refused: ${err.message}`);
        setLive("bad", "offline, retrying");
        await sleep(pause);
        pause = Math.min(pause * 2, 10000);
      }
    }
  }

  function apply(u) {
    state.v = u.version;
    if (u.live) setLive("live", "live");
    else setLive("wait", u.feed_error ? `feed unavailable: ${u.feed_error}` : "connecting to the feed…");
    place($("overview"), u.overview);
    const rows = $("invocations").tBodies[0];
    if (u.reset) rows.replaceChildren();
    for (const row of u.rows) {
      rows.insertAdjacentHTML("afterbegin", row);
      localTimes(rows.rows[0]);
    }
    while (rows.rows.length > MAX_ROWS) rows.deleteRow(-1);
    state.seq = u.seq;
    $("no-invocations").hidden = rows.rows.length > 0;
    $("since").textContent = u.since ? `watched since ${new Date(u.since).toLocaleTimeString([], { hour12: false })}` : "";
    $("dropped").hidden = !u.dropped;
    $("dropped").textContent = `The feed dropped ${u.dropped} notes: some invocations are missing here (never their records).`;
    if (u.letters !== null) {
      place($("letters"), u.letters);
      state.lv = u.letters_version;
    }
  }

  // Clicks: rows show a record or an entry; buttons preview, confirm or cancel.
  async function show(target, method, path, data) {
    target.setAttribute("aria-busy", "true");
    try {
      const response = await call(method, path, data);
      place(target, await response.text());
    } catch (err) {
      if (err instanceof Refused) return signedOut(`The token was refused: ${err.message}`);
      target.replaceChildren(text("p", "error", err.message));
    } finally {
      target.removeAttribute("aria-busy");
    }
  }

  function select(el) {
    for (const other of el.parentElement.querySelectorAll(".selected")) other.classList.remove("selected");
    el.classList.add("selected");
  }

  function selection(d) {
    if (d.ids) return { action: d.op, ids: JSON.parse(d.ids) };
    return { action: d.op, all: true, function: d.function || null, fingerprint: d.fingerprint };
  }

  function act(el) {
    const d = el.dataset;
    switch (d.action) {
      case "record":
        select(el);
        return show($("record"), "GET", `/console/record?${query({ function: d.function, key: d.key, event_id: d.eventId })}`);
      case "letter":
        select(el);
        return show($("letter"), "GET", `/console/dead-letters/entry?${query({ id: d.id })}`);
      case "letters":
      case "letters-all":
        return show($("letters"), "GET", `/console/dead-letters?${query({ all: d.action === "letters-all" })}`);
      case "preview":
        return show($("letter"), "POST", "/console/dead-letters/preview", selection(d));
      case "confirm":
        el.disabled = true; // one click, one change
        return show($("letter"), "POST", "/console/dead-letters/confirm", { action: d.op, ids: JSON.parse(d.ids), confirm: true });
      case "cancel":
        return place($("letter"), hints.letter);
      default:
        return undefined;
    }
  }

  document.addEventListener("click", (ev) => {
    const el = ev.target.closest("[data-action]");
    if (el && !ev.target.closest("a, summary")) act(el);
  });
  document.addEventListener("keydown", (ev) => {
    const el = ev.key === "Enter" && ev.target.closest("tr[data-action]");
    if (el) act(el);
  });

  // Uploads: the API signs a POST for one key and the exact size; the bytes go to the store.
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (ev) => {
      ev.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    uploadAll(ev.dataTransfer.files);
  });
  $("files").addEventListener("change", (ev) => {
    uploadAll(Array.from(ev.target.files));
    ev.target.value = "";
  });
  // A file dropped beside the zone must not make the browser leave the console to open it.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (ev) => ev.preventDefault());

  async function uploadAll(files) {
    for (const file of Array.from(files)) await upload(file);
  }

  async function upload(file) {
    const key = $("prefix").value + file.name;
    const item = document.createElement("li");
    const bar = document.createElement("progress");
    const status = text("span", "state", "signing…");
    bar.max = 100;
    bar.value = 0;
    item.dataset.key = key;
    item.append(text("code", "key", key), bar, status);
    $("uploads").prepend(item);
    try {
      const response = await call("POST", "/v1/uploads", { key, method: "POST", max_bytes: Math.max(file.size, 1) });
      const signed = await response.json();
      status.textContent = "uploading…";
      await send(signed, file, (percent) => {
        bar.value = percent;
        status.textContent = `${percent}%`;
      });
      bar.value = 100;
      item.dataset.state = "done";
      status.textContent = `uploaded, ${file.size} B`;
    } catch (err) {
      item.dataset.state = "failed";
      status.textContent = err.message;
      if (err instanceof Refused) signedOut(`The token was refused: ${err.message}`);
    }
  }

  function send(signed, file, progress) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      for (const [name, value] of Object.entries(signed.fields)) form.append(name, value);
      form.append("file", file); // last: S3 ignores fields after the file
      const xhr = new XMLHttpRequest(); // fetch() cannot report upload progress
      xhr.open("POST", signed.url);
      xhr.upload.onprogress = (ev) => {
        if (ev.lengthComputable) progress(Math.round((100 * ev.loaded) / ev.total));
      };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) return resolve();
        const message = /<Message>([^<]*)<\/Message>/.exec(xhr.responseText || "");
        return reject(new Error(`the store refused it (${xhr.status}): ${message ? message[1] : xhr.statusText}`));
      };
      xhr.onerror = () => reject(new Error(`the store at ${new URL(signed.url).origin} did not answer: can this browser reach it?`));
      xhr.send(form);
    });
  }

  if (body.dataset.auth === "none" || token()) signedIn();
  else signedOut("");
})();
