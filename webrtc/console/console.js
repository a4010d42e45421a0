// CareBridge clinician console: sign in, the day's waiting room, admit, run the call, record the summary.
// Plain browser JavaScript, no build step, no external resources (the page's CSP allows only 'self').
// The signaling protocol is the telemedicine API contract: only the clinician offers, on `welcome`
// with the patient present and on every `presence` of the patient (a fresh RTCPeerConnection each time).
"use strict";

(() => {
  const TOKEN_KEY = "carebridge.console.access_token";  // sessionStorage only: gone with the tab
  const DEVICE_KEY = "carebridge.console.device_id";    // an identifier, not a credential
  const REFRESH_MS = 5000;
  const STATS_MS = 5000;
  const PING_MS = 20000;
  const MAX_SIGNAL_RETRIES = 5;
  const MAX_OFFER_RETRIES = 2;
  const CLOSED = new Set(["ended", "no_show", "cancelled", "technical_failure"]);
  const STATE_WORDS = {
    scheduled: "Scheduled: the patient has not arrived yet",
    early_arrival: "The patient arrived early",
    waiting: "The patient is waiting",
    clinician_joined: "You are in the room; the call is not connected",
    in_progress: "Call in progress",
    ended: "The call has ended",
    no_show: "The patient did not attend",
    cancelled: "The appointment was cancelled",
    technical_failure: "Ended: the call could not work",
  };

  const $ = (id) => document.getElementById(id);
  let refreshToken = null;  // memory only: lets a long call outlive a short access token
  let challengeToken = null;
  let refreshTimer = null;
  let call = null;          // the consultation this console is in, or null
  let summaryFor = null;    // {id, patientName} after a call
  const waitingSince = new Map();  // consultation id -> Date the patient was first seen waiting
  const rows = new Map();          // consultation id -> <tr>

  // ---- HTTP -------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status, problem) {
      super(message);
      this.status = status;
      this.problem = problem;
    }
  }

  function problemText(payload, status) {
    if (payload && typeof payload === "object") {
      const fields = Array.isArray(payload.errors)
        ? payload.errors.map((e) => e.message || e.detail).filter(Boolean) : [];
      const detail = payload.detail || payload.title;
      if (detail) return fields.length ? `${detail} ${fields.join(" ")}` : detail;
    }
    return `The server answered ${status}.`;
  }

  async function request(method, path, body, token) {
    const headers = { Accept: "application/json, application/problem+json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method, headers, credentials: "omit", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let payload = null;
    if (text) {
      try { payload = JSON.parse(text); } catch { payload = null; }
    }
    return { response, payload };
  }

  async function api(method, path, body) {
    let token = sessionStorage.getItem(TOKEN_KEY);
    let { response, payload } = await request(method, path, body, token);
    if (response.status === 401 && token && refreshToken && await refreshSession()) {
      token = sessionStorage.getItem(TOKEN_KEY);
      ({ response, payload } = await request(method, path, body, token));
    }
    if (response.status === 401 && token) signedOut("Your session has ended. Please sign in again.");
    if (!response.ok) throw new ApiError(problemText(payload, response.status), response.status, payload);
    return payload;
  }

  async function publicApi(method, path, body) {
    const { response, payload } = await request(method, path, body, null);
    if (!response.ok) throw new ApiError(problemText(payload, response.status), response.status, payload);
    return payload;
  }

  async function refreshSession() {
    const spent = refreshToken;
    refreshToken = null;
    try {
      const { response, payload } = await request("POST", "/v1/auth/refresh", { refresh_token: spent });
      if (!response.ok || !payload || !payload.access_token) return false;
      keepTokens(payload);
      return true;
    } catch {
      return false;
    }
  }

  function keepTokens(tokens) {
    sessionStorage.setItem(TOKEN_KEY, tokens.access_token);
    refreshToken = tokens.refresh_token || null;
  }

  function deviceId() {
    let id = localStorage.getItem(DEVICE_KEY);
    if (!id) {
      id = `console-${crypto.randomUUID()}`;
      localStorage.setItem(DEVICE_KEY, id);
    }
    return id;
  }

  // ---- small view helpers ---------------------------------------------------------------------

  function show(id, visible) { $(id).hidden = !visible; }

  function notice(text) { $("notice").textContent = text || ""; }

  function clockTime(date) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function startTime(entry) {
    // The clinic's wall-clock time: "23 November 2026 at 09:00 GMT" gives "09:00 GMT".
    const local = typeof entry.starts_at_local === "string" ? entry.starts_at_local : "";
    const words = local.match(/ at (\d{1,2}:\d{2}.*)$/) || local.match(/T(\d{2}:\d{2})/);
    if (words) return words[1];
    const starts = new Date(entry.starts_at);
    return Number.isNaN(starts.getTime()) ? "" : clockTime(starts);
  }

  function focusHeading(id) {
    const heading = $(id);
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }

  // ---- signing in and out ---------------------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    $("sign-in-error").textContent = "";
    $("sign-in").disabled = true;
    try {
      const result = await publicApi("POST", "/v1/auth/login", {
        email: $("email").value.trim(), password: $("password").value,
        device_id: deviceId(), device_label: "Clinician console",
      });
      $("password").value = "";
      if (result && result.second_factor_required) {
        challengeToken = result.challenge_token;
        show("sign-in-form", false);
        show("second-factor-form", true);
        $("code").focus();
        return;
      }
      signedIn(result);
    } catch (error) {
      $("sign-in-error").textContent = error.message;
    } finally {
      $("sign-in").disabled = false;
    }
  }

  async function answerSecondFactor(event) {
    event.preventDefault();
    $("sign-in-error").textContent = "";
    $("verify-code").disabled = true;
    try {
      const result = await publicApi("POST", "/v1/auth/second-factor", {
        challenge_token: challengeToken, code: $("code").value.replace(/\s+/g, ""),
      });
      challengeToken = null;
      $("code").value = "";
      signedIn(result);
    } catch (error) {
      $("sign-in-error").textContent = error.message;
    } finally {
      $("verify-code").disabled = false;
    }
  }

  function signedIn(tokens) {
    keepTokens(tokens);
    show("second-factor-form", false);
    show("sign-in-form", true);
    showWaitingRoom();
  }

  function signedOut(message) {
    leaveCall();
    stopRefreshing();
    sessionStorage.removeItem(TOKEN_KEY);
    refreshToken = null;
    challengeToken = null;
    summaryFor = null;
    for (const section of ["waiting-room-section", "call-section", "summary-section"]) show(section, false);
    show("sign-out", false);
    show("second-factor-form", false);
    show("sign-in-form", true);
    show("sign-in-section", true);
    notice(message || "");
  }

  async function signOut() {
    try { await api("POST", "/v1/auth/logout"); } catch { /* signing out locally is what matters */ }
    signedOut("You have signed out.");
  }

  // ---- the waiting room -----------------------------------------------------------------------

  function showWaitingRoom() {
    for (const section of ["sign-in-section", "call-section", "summary-section"]) show(section, false);
    show("waiting-room-section", true);
    show("sign-out", true);
    focusHeading("waiting-room-title");
    startRefreshing();
  }

  function startRefreshing() {
    stopRefreshing();
    refreshWaitingRoom();
    refreshTimer = setInterval(refreshWaitingRoom, REFRESH_MS);
  }

  function stopRefreshing() {
    if (refreshTimer !== null) clearInterval(refreshTimer);
    refreshTimer = null;
  }

  async function refreshWaitingRoom() {
    try {
      const day = $("day").value;  // empty: the API's today, in the clinic's time zone
      const query = /^\d{4}-\d{2}-\d{2}$/.test(day) ? `?date=${day}` : "";
      const listing = await api("GET", `/v1/staff/consultations${query}`);
      renderWaitingRoom(listing.consultations || []);
      $("waiting-room-updated").textContent = `Last updated ${clockTime(new Date())}.`;
    } catch (error) {
      if (error.status !== 401) notice(`The waiting room could not be refreshed: ${error.message}`);
    }
  }

  function renderWaitingRoom(entries) {
    const body = $("waiting-room-rows");
    const seen = new Set();
    for (const entry of entries) {
      const id = entry.consultation_id;
      seen.add(id);
      let row = rows.get(id);
      if (!row) {
        row = newRow(id);
        rows.set(id, row);
      }
      body.appendChild(row);  // keeps the server's order; moving a row keeps its button
      fillRow(row, entry);
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.remove();
        rows.delete(id);
        waitingSince.delete(id);
      }
    }
    show("waiting-room-empty", entries.length === 0);
  }

  function newRow(id) {
    const row = document.createElement("tr");
    row.dataset.consultationId = id;
    for (const name of ["patient", "time", "state", "since"]) {
      const cell = document.createElement("td");
      cell.className = name;
      row.appendChild(cell);
    }
    const action = document.createElement("td");
    const admit = document.createElement("button");
    admit.type = "button";
    admit.className = "admit";
    admit.addEventListener("click", () => admitPatient(row.entry));
    action.appendChild(admit);
    row.appendChild(action);
    return row;
  }

  function fillRow(row, entry) {
    row.entry = entry;
    const open = !CLOSED.has(entry.state);
    const cells = row.cells;
    const name = entry.patient_name || "Patient";
    cells[0].textContent = name;
    cells[1].textContent = startTime(entry);
    cells[2].textContent = STATE_WORDS[entry.state] || entry.state;
    cells[2].className = `state state-${entry.state}`;
    row.dataset.state = entry.state;
    if (entry.patient_present && open) {
      if (!waitingSince.has(entry.consultation_id)) {
        const since = entry.waiting_since ? new Date(entry.waiting_since) : new Date();
        waitingSince.set(entry.consultation_id, since);
      }
      const since = waitingSince.get(entry.consultation_id);
      const minutes = Math.max(0, Math.floor((Date.now() - since.getTime()) / 60000));
      cells[3].textContent = `${clockTime(since)} (${minutes} min)`;
    } else {
      waitingSince.delete(entry.consultation_id);
      cells[3].textContent = open ? "Not in the waiting room" : "";
    }
    const admit = cells[4].firstChild;
    const rejoin = entry.state === "clinician_joined" || entry.state === "in_progress";
    admit.textContent = rejoin ? "Rejoin" : "Admit";
    admit.setAttribute("aria-label", `${admit.textContent} ${name}`);
    admit.disabled = !open || call !== null;
  }

  // ---- the call ---------------------------------------------------------------------------------

  async function admitPatient(entry) {
    if (!entry || call !== null) return;
    notice("");
    let grant;
    try {
      grant = await api("POST", `/v1/staff/consultations/${encodeURIComponent(entry.consultation_id)}/join`, {});
    } catch (error) {
      notice(`Could not join: ${error.message}`);
      return;
    }
    stopRefreshing();
    call = {
      id: entry.consultation_id, patientName: entry.patient_name || "the patient", grant, ws: null, pc: null,
      localStream: null, remoteStream: null, pendingIce: [], frames: Promise.resolve(),
      state: null, detail: "", patientPresent: false, connectedSent: false, leaving: false,
      signalRetries: 0, offerRetries: 0, statsTimer: null, pingTimer: null, lastStats: null,
    };
    $("call-patient").textContent = entry.patient_name || "the patient";
    show("waiting-room-section", false);
    show("summary-section", false);
    show("call-section", true);
    $("end-call").disabled = false;
    $("end-failure").disabled = false;
    focusHeading("call-title");
    setState((grant.consultation && grant.consultation.state) || grant.state, "Starting your camera");
    const current = call;
    current.localStream = await openCamera();
    if (call !== current) {
      stopTracks(current.localStream);
      return;
    }
    $("local-video").srcObject = current.localStream;
    describe("Connecting to the consultation");
    connectSignal();
  }

  async function openCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      notice("This browser cannot use a camera here; the patient will not see or hear you.");
      return null;
    }
    for (const constraints of [{ audio: true, video: true }, { audio: true, video: false }]) {
      try {
        const stream = await navigator.mediaDevices.getUserMedia(constraints);
        if (!constraints.video) notice("Your camera is not available: the patient will hear you only.");
        return stream;
      } catch {
        // try with less
      }
    }
    notice("Allow the microphone and camera for this page; the patient will not see or hear you.");
    return null;
  }

  function connectSignal() {
    const url = new URL(call.grant.websocket_path, window.location.href);
    url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("ticket", call.grant.ticket);
    const ws = new WebSocket(url.href);
    call.ws = ws;
    ws.addEventListener("message", (event) => {
      const current = call;
      if (!current || current.ws !== ws) return;
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      // One frame at a time: an answer is applied before the candidates that follow it.
      current.frames = current.frames.then(() => handleFrame(current, frame)).catch((error) => {
        console.warn("signaling frame failed", frame.type, error && error.name);
      });
    });
    ws.addEventListener("close", (event) => signalClosed(ws, event));
    clearInterval(call.pingTimer);
    call.pingTimer = setInterval(() => send({ type: "ping" }), PING_MS);
  }

  function send(frame) {
    if (call && call.ws && call.ws.readyState === WebSocket.OPEN) call.ws.send(JSON.stringify(frame));
  }

  async function handleFrame(current, frame) {
    if (call !== current) return;
    switch (frame.type) {
      case "welcome":
        current.signalRetries = 0;
        setState(frame.state && frame.state.state);
        current.patientPresent = Boolean(frame.peer_present);
        if (current.patientPresent && !(current.pc && current.pc.connectionState === "connected")) {
          await offer(current);
        } else if (!current.patientPresent) {
          describe("Waiting for the patient to connect");
        }
        break;
      case "state":
        setState(frame.state && frame.state.state);
        if (CLOSED.has(current.state)) callClosed();
        break;
      case "presence":
        if (frame.role !== "patient") break;
        current.patientPresent = Boolean(frame.present);
        if (current.patientPresent) {
          current.offerRetries = 0;
          await offer(current);
        } else {
          closePeer(current);
          describe("The patient left the call; they can rejoin while the consultation is open");
        }
        break;
      case "answer":
        if (current.pc && current.pc.signalingState === "have-local-offer" && typeof frame.sdp === "string") {
          await current.pc.setRemoteDescription({ type: "answer", sdp: frame.sdp });
          const pending = current.pendingIce.splice(0);
          for (const candidate of pending) await addCandidate(current.pc, candidate);
        }
        break;
      case "ice":
        if (!current.pc) break;
        if (current.pc.remoteDescription) await addCandidate(current.pc, frame);
        else current.pendingIce.push(frame);
        break;
      case "error":
        console.warn("signaling error", frame.code);
        break;
      default:
        break;
    }
  }

  async function addCandidate(pc, frame) {
    if (frame.candidate === null || frame.candidate === undefined) {
      await pc.addIceCandidate(null);
      return;
    }
    await pc.addIceCandidate({
      candidate: frame.candidate, sdpMid: frame.sdpMid, sdpMLineIndex: frame.sdpMLineIndex,
    });
  }

  async function offer(current) {
    closePeer(current);
    const pc = new RTCPeerConnection({ iceServers: current.grant.ice_servers || [] });
    current.pc = pc;
    current.pendingIce = [];
    current.connectedSent = false;
    current.lastStats = null;
    current.remoteStream = new MediaStream();
    $("remote-video").srcObject = current.remoteStream;
    const tracks = current.localStream ? current.localStream.getTracks() : [];
    for (const track of tracks) pc.addTrack(track, current.localStream);
    for (const kind of ["audio", "video"]) {
      if (!tracks.some((track) => track.kind === kind)) pc.addTransceiver(kind, { direction: "recvonly" });
    }
    pc.addEventListener("track", (event) => {
      if (current.pc !== pc) return;
      current.remoteStream.addTrack(event.track);
      $("remote-video").play().catch(() => { /* playback starts when the browser allows it */ });
    });
    pc.addEventListener("icecandidate", (event) => {
      if (current.pc !== pc) return;
      const candidate = event.candidate;
      send({
        type: "ice", candidate: candidate ? candidate.candidate : null,
        sdpMid: candidate ? candidate.sdpMid : null,
        sdpMLineIndex: candidate ? candidate.sdpMLineIndex : null,
      });
    });
    pc.addEventListener("connectionstatechange", () => connectionChanged(current, pc));
    await pc.setLocalDescription(await pc.createOffer());
    send({ type: "offer", sdp: pc.localDescription.sdp });
    describe("Calling the patient");
  }

  function connectionChanged(current, pc) {
    if (current.pc !== pc) return;
    const state = pc.connectionState;
    $("call-section").dataset.connection = state;
    if (state === "connected") {
      describe("");
      if (!current.connectedSent) {
        current.connectedSent = true;
        send({ type: "connected" });
        startStats(current);
      }
    } else if (state === "disconnected") {
      describe("The connection is interrupted; trying to recover");
    } else if (state === "failed") {
      stopStats(current);
      send({ type: "failed", reason: "ice-connection-failed" });
      if (current.patientPresent && current.offerRetries < MAX_OFFER_RETRIES) {
        current.offerRetries += 1;
        describe("The connection failed; calling the patient again");
        current.frames = current.frames.then(() => offer(current)).catch(() => {});
      } else {
        describe("The connection failed. The patient can rejoin, or end the call as 'could not work'");
      }
    }
  }

  function closePeer(current) {
    stopStats(current);
    if (current.pc) {
      current.pc.close();
      current.pc = null;
    }
    if (current.remoteStream) {
      for (const track of current.remoteStream.getTracks()) track.stop();
      current.remoteStream = null;
    }
    $("remote-video").srcObject = null;
    delete $("call-section").dataset.connection;
  }

  function signalClosed(ws, event) {
    const current = call;
    if (!current || current.ws !== ws || current.leaving) return;
    clearInterval(current.pingTimer);
    current.ws = null;
    if (event.code === 4409) {
      callClosed();
    } else if (event.code === 4403) {
      describe("The server refused this page's address; ask the clinic's administrator");
    } else if (event.code === 4404) {
      describe("This consultation no longer exists");
    } else if (current.signalRetries < MAX_SIGNAL_RETRIES) {
      // An expired ticket (4401), a restarted server or a dropped network: join again for a new ticket.
      current.signalRetries += 1;
      describe("Reconnecting to the consultation");
      setTimeout(() => rejoinSignal(current), Math.min(1000 * current.signalRetries, 5000));
    } else {
      describe("Lost the connection to the server. End the call, then admit the patient again");
    }
  }

  async function rejoinSignal(current) {
    if (call !== current || current.leaving) return;
    try {
      current.grant = await api("POST", `/v1/staff/consultations/${encodeURIComponent(current.id)}/join`, {});
    } catch (error) {
      if (error.problem && typeof error.problem.type === "string" && error.problem.type.endsWith("consultation-closed")) {
        callClosed();
      } else {
        describe(`Could not reconnect: ${error.message}`);
      }
      return;
    }
    if (call === current && !current.leaving) connectSignal();
  }

  // ---- quality statistics ---------------------------------------------------------------------

  function startStats(current) {
    stopStats(current);
    // The first report covers the call since it connected.
    current.lastStats = { at: performance.now(), received: 0, lost: 0, bytes: 0 };
    current.statsTimer = setInterval(() => {
      sendStats(current).catch(() => { /* a closed connection has no statistics */ });
    }, STATS_MS);
  }

  function stopStats(current) {
    if (current.statsTimer !== null) clearInterval(current.statsTimer);
    current.statsTimer = null;
  }

  const rounded = (value) => (value === null || !Number.isFinite(value) ? null : Math.round(value * 10) / 10);

  async function sendStats(current) {
    const pc = current.pc;
    if (!pc || call !== current) return;
    const report = await pc.getStats();
    let rtt = null;
    let fps = null;
    let received = 0;
    let lost = 0;
    let bytes = 0;
    let framesDecoded = 0;
    report.forEach((entry) => {
      if (entry.type === "candidate-pair" && entry.nominated && entry.state === "succeeded"
          && typeof entry.currentRoundTripTime === "number") {
        rtt = entry.currentRoundTripTime * 1000;
      } else if (entry.type === "inbound-rtp") {
        received += entry.packetsReceived || 0;
        lost += Math.max(0, entry.packetsLost || 0);
        bytes += entry.bytesReceived || 0;
        if (entry.kind === "video") {
          if (typeof entry.framesPerSecond === "number") fps = entry.framesPerSecond;
          framesDecoded += entry.framesDecoded || 0;
        }
      }
    });
    const now = performance.now();
    const previous = current.lastStats;
    current.lastStats = { at: now, received, lost, bytes };
    $("remote-video").dataset.framesDecoded = String(framesDecoded);
    let loss = null;
    let bitrate = null;
    if (previous) {
      const newlyReceived = received - previous.received;
      const newlyLost = Math.max(0, lost - previous.lost);
      if (newlyReceived + newlyLost > 0) loss = (100 * newlyLost) / (newlyReceived + newlyLost);
      const seconds = (now - previous.at) / 1000;
      if (seconds > 0 && bytes >= previous.bytes) bitrate = ((bytes - previous.bytes) * 8) / 1000 / seconds;
    }
    send({
      type: "stats", rtt_ms: rounded(rtt), packet_loss_pct: rounded(loss),
      inbound_fps: rounded(fps), bitrate_kbps: rounded(bitrate),
    });
  }

  // ---- state banner, controls, ending ---------------------------------------------------------

  function setState(state, detail) {
    if (!call) return;
    if (state) call.state = state;
    if (detail !== undefined) call.detail = detail;
    renderBanner();
  }

  function describe(detail) {
    if (!call) return;
    call.detail = detail;
    renderBanner();
  }

  function renderBanner() {
    const banner = $("state");
    const words = STATE_WORDS[call.state] || call.state || "";
    banner.dataset.state = call.state || "";
    banner.textContent = call.detail && !CLOSED.has(call.state) ? `${words}. ${call.detail}.` : `${words}.`;
  }

  function toggleTracks(kind, button, onText, offText) {
    if (!call || !call.localStream) return;
    const tracks = call.localStream.getTracks().filter((track) => track.kind === kind);
    if (tracks.length === 0) return;
    const off = button.getAttribute("aria-pressed") !== "true";
    for (const track of tracks) track.enabled = !off;
    button.setAttribute("aria-pressed", String(off));
    button.textContent = off ? offText : onText;
  }

  async function endCall(outcome) {
    if (!call) return;
    $("end-call").disabled = true;
    $("end-failure").disabled = true;
    try {
      const view = await api("POST", `/v1/staff/consultations/${encodeURIComponent(call.id)}/end`, { outcome });
      setState(view && view.state);
    } catch (error) {
      const closed = error.problem && typeof error.problem.type === "string"
        && error.problem.type.endsWith("consultation-closed");
      if (!closed) {
        notice(`Could not end the call: ${error.message}`);
        $("end-call").disabled = false;
        $("end-failure").disabled = false;
        return;
      }
    }
    callClosed();
  }

  function callClosed() {
    const current = call;
    if (!current) return;
    const finalState = current.state;
    leaveCall();
    if (finalState === "ended" || finalState === "technical_failure") {
      showSummary(current, finalState);
    } else {
      // Cancelled, a no-show, or moved to another time (the room then closes as `scheduled`).
      notice(finalState === "scheduled" ? "The appointment was moved to another time."
        : `${STATE_WORDS[finalState] || "The consultation is closed"}.`);
      showWaitingRoom();
    }
  }

  function leaveCall() {
    const current = call;
    if (!current) return;
    current.leaving = true;
    clearInterval(current.pingTimer);
    send({ type: "bye" });
    if (current.ws) current.ws.close(1000);
    closePeer(current);
    stopTracks(current.localStream);
    $("local-video").srcObject = null;
    $("call-section").hidden = true;
    $("toggle-mic").setAttribute("aria-pressed", "false");
    $("toggle-mic").textContent = "Mute microphone";
    $("toggle-camera").setAttribute("aria-pressed", "false");
    $("toggle-camera").textContent = "Turn camera off";
    call = null;
  }

  function stopTracks(stream) {
    if (stream) for (const track of stream.getTracks()) track.stop();
  }

  // ---- after the call ---------------------------------------------------------------------------

  function showSummary(current, finalState) {
    summaryFor = { id: current.id, patientName: current.patientName };
    $("summary-title").textContent = `After the call with ${current.patientName}`
      + (finalState === "technical_failure" ? " (the call could not work)" : "");
    $("follow-up").value = "";
    $("internal-notes").value = "";
    $("summary-status").textContent = "";
    show("summary-section", true);
    focusHeading("summary-title");
  }

  async function saveSummary(event) {
    event.preventDefault();
    if (!summaryFor) return;
    $("save-summary").disabled = true;
    $("summary-status").textContent = "Saving…";
    try {
      await api("PUT", `/v1/staff/consultations/${encodeURIComponent(summaryFor.id)}/summary`, {
        follow_up_instructions: $("follow-up").value, internal_notes: $("internal-notes").value,
      });
      $("summary-status").textContent = `Saved at ${clockTime(new Date())}.`;
      $("summary-status").dataset.saved = "true";
    } catch (error) {
      $("summary-status").textContent = `Not saved: ${error.message}`;
      delete $("summary-status").dataset.saved;
    } finally {
      $("save-summary").disabled = false;
    }
  }

  function backToWaitingRoom() {
    summaryFor = null;
    delete $("summary-status").dataset.saved;
    showWaitingRoom();
  }

  // ---- start ------------------------------------------------------------------------------------

  function start() {
    $("sign-in-form").addEventListener("submit", signIn);
    $("second-factor-form").addEventListener("submit", answerSecondFactor);
    $("sign-out").addEventListener("click", signOut);
    $("toggle-mic").addEventListener("click", (event) =>
      toggleTracks("audio", event.currentTarget, "Mute microphone", "Unmute microphone"));
    $("toggle-camera").addEventListener("click", (event) =>
      toggleTracks("video", event.currentTarget, "Turn camera off", "Turn camera on"));
    $("end-call").addEventListener("click", () => endCall("completed"));
    $("end-failure").addEventListener("click", () => endCall("technical_failure"));
    $("summary-form").addEventListener("submit", saveSummary);
    $("back-to-waiting-room").addEventListener("click", backToWaitingRoom);
    // /console?date=YYYY-MM-DD opens another day's waiting room.
    const day = new URLSearchParams(window.location.search).get("date");
    if (day && /^\d{4}-\d{2}-\d{2}$/.test(day)) $("day").value = day;
    $("day").addEventListener("change", () => {
      if (refreshTimer !== null) startRefreshing();
    });
    window.addEventListener("beforeunload", (event) => {
      if (call !== null) event.preventDefault();  // the browser asks before leaving a call
    });
    window.addEventListener("pagehide", () => leaveCall());
    if (sessionStorage.getItem(TOKEN_KEY)) showWaitingRoom();
    else $("email").focus();
  }

  start();
})();
