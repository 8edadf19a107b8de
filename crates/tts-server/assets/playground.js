// The playground's script: plain ES2020, no build step, same-origin requests only.
// PCM is played with Web Audio as it arrives from /v1/tts/stream; MP3 through MediaSource where the
// browser supports it; the other formats (and MP3 without MediaSource) as a whole file from /v1/tts.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    form: $("speak-form"), text: $("text"), voice: $("voice"), format: $("format"),
    speed: $("speed"), speedValue: $("speed-value"), speak: $("speak"), stop: $("stop"),
    download: $("download"), status: $("status"), error: $("error"), player: $("player"),
    ttfa: $("m-ttfa"), audio: $("m-audio"), rtf: $("m-rtf"), cache: $("m-cache"),
    played: $("m-played"), request: $("m-request"), apiKey: $("api-key"),
    voiceRows: document.querySelector("#voice-table tbody"), refresh: $("refresh-voices"),
    uploadForm: $("upload-form"), uploadName: $("upload-name"), uploadFile: $("upload-file"),
    uploadLanguage: $("upload-language"), uploadTranscript: $("upload-transcript"),
    uploadConsent: $("upload-consent"), upload: $("upload"), uploadStatus: $("upload-status"),
  };
  // Form fields the server may name in an error's `field`.
  const fieldControls = { text: ui.text, voice: ui.voice, format: ui.format, speed: ui.speed };

  // Read by the browser test (tests/web/playground.test.mjs) and handy in the console.
  const state = { runs: 0, lastRun: null, voicesLoaded: false };
  window.playground = state;

  let audioContext = null;
  let current = null; // the run in progress: { abort, stopPlayback }
  let downloadUrl = null;

  function setStatus(message) { ui.status.textContent = message; }

  function showError(message) {
    ui.error.textContent = message;
    ui.error.hidden = !message;
  }

  function clearInvalid() {
    for (const control of Object.values(fieldControls)) control.removeAttribute("aria-invalid");
  }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra);
    const key = ui.apiKey.value.trim();
    if (key) headers.Authorization = `Bearer ${key}`;
    return headers;
  }

  /// The server's `{"error":{code,message,field}}` as an Error carrying those fields.
  async function responseError(response, what) {
    let detail = null;
    try {
      const body = await response.json();
      detail = body && body.error;
    } catch (_) { /* not JSON: fall back to the status line */ }
    const message = detail && detail.message ? detail.message : `${response.status} ${response.statusText}`;
    const error = new Error(`${what} failed: ${message}` +
      (detail && detail.field ? ` (field: ${detail.field})` : "") +
      (detail && detail.code ? ` [${detail.code}]` : ""));
    error.status = response.status;
    error.field = detail && detail.field;
    error.code = detail && detail.code;
    return error;
  }

  /// True when the server has no such route (405, or the router's own 404 `not_found`), as opposed
  /// to a route answering 404 about a thing (`voice_not_found`).
  async function routeMissing(response) {
    if (response.status === 405) return true;
    if (response.status !== 404) return false;
    const error = await responseError(response.clone(), "");
    return !error.code || error.code === "not_found";
  }

  function seconds(value, digits = 2) { return `${value.toFixed(digits)} s`; }

  // ---------------------------------------------------------------- voices

  async function loadVoices() {
    ui.refresh.disabled = true;
    try {
      const response = await fetch("/v1/voices", { headers: authHeaders() });
      if (!response.ok) throw await responseError(response, "Listing voices");
      const list = await response.json();
      renderVoices(list);
      state.voicesLoaded = true;
      setStatus(`${list.voices.length} voices loaded. Ready.`);
    } catch (error) {
      showError(error.message);
      setStatus("Could not load voices.");
    } finally {
      ui.refresh.disabled = false;
    }
  }

  function renderVoices(list) {
    const previous = ui.voice.value;
    ui.voice.replaceChildren();
    const groups = new Map();
    for (const voice of list.voices) {
      if (!groups.has(voice.model)) {
        const group = document.createElement("optgroup");
        group.label = voice.model;
        groups.set(voice.model, group);
        ui.voice.append(group);
      }
      const label = voice.name ? `${voice.name} [${voice.id}]` : voice.id;
      const option = new Option(`${label} (${voice.language}${voice.kind === "stock" ? "" : ", " + voice.kind})`, voice.id);
      groups.get(voice.model).append(option);
    }
    const ids = list.voices.map((v) => v.id);
    ui.voice.value = ids.includes(previous) ? previous : (ids.includes(list.default_voice) ? list.default_voice : ids[0] || "");

    ui.voiceRows.replaceChildren();
    for (const voice of list.voices) {
      const row = ui.voiceRows.insertRow();
      const id = voice.name ? `${voice.name} [${voice.id}]` : voice.id;
      for (const value of [id, voice.model, voice.language, voice.kind]) row.insertCell().textContent = value;
      const actions = row.insertCell();
      if (voice.kind === "cloned") {
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "secondary";
        remove.textContent = "Delete";
        remove.setAttribute("aria-label", `Delete voice ${voice.id}`);
        remove.addEventListener("click", () => deleteVoice(voice.id));
        actions.append(remove);
      }
    }
  }

  async function deleteVoice(id) {
    ui.uploadStatus.textContent = `Deleting ${id}…`;
    try {
      const response = await fetch(`/v1/voices/${encodeURIComponent(id)}`, { method: "DELETE", headers: authHeaders() });
      if (await routeMissing(response)) {
        ui.uploadStatus.textContent = "This server does not support deleting voices.";
        return;
      }
      if (!response.ok) throw await responseError(response, "Deleting the voice");
      ui.uploadStatus.textContent = `Deleted ${id}.`;
      await loadVoices();
    } catch (error) {
      ui.uploadStatus.textContent = error.message;
    }
  }

  async function uploadVoice(event) {
    event.preventDefault();
    const name = ui.uploadName.value.trim();
    const file = ui.uploadFile.files && ui.uploadFile.files[0];
    const consent = ui.uploadConsent.checked;
    const problem = !name ? [ui.uploadName, "Give the voice a name."]
      : !file ? [ui.uploadFile, "Choose a recording to upload."]
        : !consent ? [ui.uploadConsent, "Confirm that the speaker agreed to having their voice cloned."] : null;
    for (const control of [ui.uploadName, ui.uploadFile, ui.uploadConsent, ui.uploadLanguage, ui.uploadTranscript]) {
      control.toggleAttribute("aria-invalid", Boolean(problem) && problem[0] === control);
    }
    if (problem) {
      ui.uploadStatus.textContent = problem[1];
      problem[0].focus();
      return;
    }
    const body = new FormData();
    body.append("name", name);
    body.append("consent", "true");
    if (ui.uploadLanguage.value.trim()) body.append("language", ui.uploadLanguage.value.trim());
    if (ui.uploadTranscript.value.trim()) body.append("transcript", ui.uploadTranscript.value.trim());
    body.append("file", file, file.name);
    ui.upload.disabled = true;
    ui.uploadStatus.textContent = `Uploading ${file.name}; fitting a voice can take a while…`;
    try {
      const response = await fetch("/v1/voices", { method: "POST", headers: authHeaders(), body });
      if (await routeMissing(response)) {
        ui.uploadStatus.textContent = "This server does not accept voice uploads " +
          `(POST /v1/voices answered ${response.status}); it was built or configured without the voice library.`;
        return;
      }
      if (!response.ok) {
        const error = await responseError(response, "Uploading the voice");
        const uploadControls = { name: ui.uploadName, file: ui.uploadFile, consent: ui.uploadConsent,
          language: ui.uploadLanguage, transcript: ui.uploadTranscript };
        const control = error.field && uploadControls[error.field];
        if (control) { control.setAttribute("aria-invalid", "true"); control.focus(); }
        throw error;
      }
      const voice = await response.json().catch(() => ({}));
      ui.uploadStatus.textContent = `Added voice ${voice.id || name}.`;
      await loadVoices();
      if (voice.id) ui.voice.value = voice.id;
    } catch (error) {
      ui.uploadStatus.textContent = error.message;
    } finally {
      ui.upload.disabled = false;
    }
  }

  // ---------------------------------------------------------------- speaking

  /// Schedules s16le mono chunks back to back on an AudioContext as they arrive.
  class PcmPlayer {
    constructor(context, sampleRate) {
      this.context = context;
      this.sampleRate = sampleRate;
      this.carry = null; // an odd trailing byte: a sample split across two network chunks
      this.nextStart = 0;
      this.scheduledSeconds = 0;
      this.playedSeconds = 0;
      this.sources = new Set();
      this.firstStart = null;
      this.firstSoundAt = null;
    }

    push(bytes) {
      if (this.carry) {
        const joined = new Uint8Array(this.carry.length + bytes.length);
        joined.set(this.carry);
        joined.set(bytes, this.carry.length);
        bytes = joined;
        this.carry = null;
      }
      const whole = bytes.length - (bytes.length % 2);
      if (whole < bytes.length) this.carry = bytes.slice(whole);
      const count = whole / 2;
      if (count === 0) return;
      const view = new DataView(bytes.buffer, bytes.byteOffset, whole);
      const buffer = this.context.createBuffer(1, count, this.sampleRate);
      const channel = buffer.getChannelData(0);
      for (let i = 0; i < count; i++) channel[i] = view.getInt16(i * 2, true) / 32768;
      const source = this.context.createBufferSource();
      source.buffer = buffer;
      source.connect(this.context.destination);
      // A short lead absorbs scheduling jitter; later chunks follow sample-exactly.
      const now = this.context.currentTime;
      const start = Math.max(this.nextStart, now + 0.05);
      if (this.firstStart === null) {
        this.firstStart = start;
        // Wall-clock time at which the first sample sounds.
        this.firstSoundAt = performance.now() + (start - now) * 1000;
      }
      source.start(start);
      this.nextStart = start + buffer.duration;
      this.scheduledSeconds += buffer.duration;
      this.sources.add(source);
      source.onended = () => {
        if (this.sources.delete(source)) this.playedSeconds += buffer.duration;
      };
    }

    /// Resolves when every scheduled buffer has played (or the clock is well past the last one,
    /// should an `ended` event go missing).
    finished() {
      return new Promise((resolve) => {
        const check = () => {
          if (this.sources.size > 0 && this.context.currentTime > this.nextStart + 0.5) {
            this.playedSeconds = this.scheduledSeconds;
            this.sources.clear();
          }
          if (this.sources.size === 0) resolve(); else setTimeout(check, 50);
        };
        check();
      });
    }

    stop() {
      for (const source of this.sources) {
        source.onended = null;
        try { source.stop(); } catch (_) { /* not started yet */ }
      }
      this.sources.clear();
    }
  }

  function requestBody(format) {
    return JSON.stringify({
      text: ui.text.value,
      voice: ui.voice.value || undefined,
      format,
      speed: Number(ui.speed.value),
    });
  }

  function resetMetrics() {
    for (const cell of [ui.ttfa, ui.audio, ui.rtf, ui.cache, ui.played, ui.request]) cell.textContent = "–";
  }

  function showResponseHeaders(response, run) {
    const cache = response.headers.get("X-Cache");
    run.cache = cache;
    ui.cache.textContent = cache ? cache : "not reported";
    run.requestId = response.headers.get("X-Request-Id");
    ui.request.textContent = run.requestId || "–";
  }

  function markFirstAudio(run) {
    if (run.ttfaMs !== null) return;
    run.ttfaMs = performance.now() - run.started;
    ui.ttfa.textContent = `${Math.round(run.ttfaMs)} ms`;
    setStatus("Playing while the server synthesizes the rest…");
  }

  function finishMetrics(run) {
    ui.audio.textContent = seconds(run.audioSeconds);
    if (run.serverRtf !== null) {
      run.rtf = run.serverRtf;
      ui.rtf.textContent = `${run.rtf.toFixed(3)} (server)`;
    } else if (run.audioSeconds > 0) {
      // Streams carry no RTF header (it is only known at the end): wall time over audio time.
      run.rtf = run.totalMs / 1000 / run.audioSeconds;
      ui.rtf.textContent = `${run.rtf.toFixed(3)} (wall ÷ audio)`;
    }
  }

  function offerDownload(blob, format) {
    if (downloadUrl) URL.revokeObjectURL(downloadUrl);
    downloadUrl = URL.createObjectURL(blob);
    ui.download.href = downloadUrl;
    ui.download.download = `speech.${format}`;
    ui.download.hidden = false;
  }

  /// A WAV file around s16le samples, so streamed PCM can be replayed and downloaded.
  function wavBlob(chunks, sampleRate) {
    const dataBytes = chunks.reduce((n, c) => n + c.length, 0) & ~1;
    const header = new DataView(new ArrayBuffer(44));
    const ascii = (offset, text) => { for (let i = 0; i < text.length; i++) header.setUint8(offset + i, text.charCodeAt(i)); };
    ascii(0, "RIFF"); header.setUint32(4, 36 + dataBytes, true); ascii(8, "WAVE");
    ascii(12, "fmt "); header.setUint32(16, 16, true); header.setUint16(20, 1, true); header.setUint16(22, 1, true);
    header.setUint32(24, sampleRate, true); header.setUint32(28, sampleRate * 2, true);
    header.setUint16(32, 2, true); header.setUint16(34, 16, true);
    ascii(36, "data"); header.setUint32(40, dataBytes, true);
    return new Blob([header, ...chunks], { type: "audio/wav" });
  }

  async function speakPcm(run, signal) {
    const response = await fetch("/v1/tts/stream", {
      method: "POST", signal, headers: authHeaders({ "Content-Type": "application/json" }), body: requestBody("pcm"),
    });
    if (!response.ok) throw await responseError(response, "Synthesis");
    showResponseHeaders(response, run);
    const sampleRate = Number(response.headers.get("X-Sample-Rate"));
    if (!(sampleRate > 0)) throw new Error("The server sent PCM without an X-Sample-Rate header.");
    const player = new PcmPlayer(audioContext, sampleRate);
    run.stopPlayback = () => player.stop();
    const chunks = [];
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value.length === 0) continue;
      markFirstAudio(run);
      chunks.push(value);
      player.push(value);
      run.audioSeconds = player.scheduledSeconds;
      ui.audio.textContent = seconds(run.audioSeconds);
    }
    run.totalMs = performance.now() - run.started;
    if (player.firstSoundAt !== null) run.playbackStartMs = player.firstSoundAt - run.started;
    finishMetrics(run);
    offerDownload(wavBlob(chunks, sampleRate), "wav");
    setStatus(`Synthesis done: ${seconds(run.audioSeconds)} of audio; playing the rest…`);
    const ticker = setInterval(() => { ui.played.textContent = seconds(player.playedSeconds); }, 200);
    try {
      await player.finished();
    } finally {
      clearInterval(ticker);
    }
    run.playedSeconds = player.playedSeconds;
    // The same audio, as a file, for replay with the player's controls.
    if (!signal.aborted && downloadUrl) ui.player.src = downloadUrl;
  }

  function mseSupports(type) {
    return typeof window.MediaSource === "function" && MediaSource.isTypeSupported(type);
  }

  function once(target, event) {
    return new Promise((resolve) => target.addEventListener(event, resolve, { once: true }));
  }

  /// Waits until the <audio> element has played to its end (or playback was stopped).
  function playedToEnd(run) {
    return new Promise((resolve, reject) => {
      const player = ui.player;
      const update = () => { run.playedSeconds = Math.max(run.playedSeconds, player.currentTime); ui.played.textContent = seconds(run.playedSeconds); };
      const cleanup = () => {
        player.removeEventListener("timeupdate", update);
        player.removeEventListener("ended", onEnded);
        player.removeEventListener("error", onError);
        run.stopPlayback = null;
      };
      const onEnded = () => { update(); cleanup(); resolve(); };
      const onError = () => { cleanup(); reject(new Error(`The browser could not play the audio (${player.error ? player.error.message || player.error.code : "unknown error"}).`)); };
      player.addEventListener("timeupdate", update);
      player.addEventListener("ended", onEnded);
      player.addEventListener("error", onError);
      run.stopPlayback = () => { player.pause(); cleanup(); resolve(); };
    });
  }

  async function startElement(run) {
    try {
      await ui.player.play();
    } catch (error) {
      // Autoplay refused (the gesture was used up by the wait): the controls remain.
      setStatus(`Press play on the audio controls (${error.message}).`);
    }
  }

  async function speakMp3Streamed(run, signal) {
    const response = await fetch("/v1/tts/stream", {
      method: "POST", signal, headers: authHeaders({ "Content-Type": "application/json" }), body: requestBody("mp3"),
    });
    if (!response.ok) throw await responseError(response, "Synthesis");
    showResponseHeaders(response, run);
    const source = new MediaSource();
    const url = URL.createObjectURL(source);
    ui.player.src = url;
    await once(source, "sourceopen");
    URL.revokeObjectURL(url);
    const buffer = source.addSourceBuffer("audio/mpeg");
    const chunks = [];
    const ended = playedToEnd(run);
    ui.player.addEventListener("playing", () => {
      if (run.playbackStartMs === null) run.playbackStartMs = performance.now() - run.started;
    }, { once: true });
    const reader = response.body.getReader();
    let started = false;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value.length === 0) continue;
      markFirstAudio(run);
      chunks.push(value);
      buffer.appendBuffer(value);
      await once(buffer, "updateend");
      if (!started) { started = true; startElement(run); }
    }
    source.endOfStream();
    run.totalMs = performance.now() - run.started;
    run.audioSeconds = Number.isFinite(ui.player.duration) ? ui.player.duration : 0;
    finishMetrics(run);
    offerDownload(new Blob(chunks, { type: "audio/mpeg" }), "mp3");
    setStatus(`Synthesis done: ${seconds(run.audioSeconds)} of audio; playing the rest…`);
    await ended;
  }

  async function speakWholeFile(run, signal, format) {
    setStatus(`Synthesizing the whole ${format.toUpperCase()} file…`);
    const response = await fetch("/v1/tts", {
      method: "POST", signal, headers: authHeaders({ "Content-Type": "application/json" }), body: requestBody(format),
    });
    if (!response.ok) throw await responseError(response, "Synthesis");
    showResponseHeaders(response, run);
    const blob = await response.blob();
    run.totalMs = performance.now() - run.started;
    markFirstAudio(run);
    const duration = Number(response.headers.get("X-Audio-Duration"));
    const rtf = Number(response.headers.get("X-RTF"));
    run.audioSeconds = Number.isFinite(duration) ? duration : 0;
    if (response.headers.get("X-RTF") !== null && Number.isFinite(rtf)) run.serverRtf = rtf;
    finishMetrics(run);
    offerDownload(blob, format);
    if (downloadUrl) ui.player.src = downloadUrl;
    const ended = playedToEnd(run);
    await startElement(run);
    await ended;
  }

  /// Whether the AudioContext runs (it stays suspended without an audio device or under a strict
  /// autoplay policy, and then nothing scheduled on it would ever play).
  async function webAudioRuns() {
    if (!audioContext) return false;
    if (audioContext.state === "running") return true;
    const resumed = audioContext.resume().then(() => true, () => false);
    await Promise.race([resumed, new Promise((resolve) => setTimeout(resolve, 1000))]);
    return audioContext.state === "running";
  }

  async function speak(event) {
    if (event) event.preventDefault();
    if (current) stopSpeaking();
    showError("");
    clearInvalid();
    if (!ui.text.value.trim()) {
      ui.text.setAttribute("aria-invalid", "true");
      showError("Type some text to speak.");
      ui.text.focus();
      return;
    }
    // Created and resumed inside the click/key handler, so autoplay policies allow it.
    if (!audioContext) {
      const Context = window.AudioContext || window.webkitAudioContext;
      if (Context) audioContext = new Context();
    }
    if (audioContext && audioContext.state === "suspended") audioContext.resume();

    const format = ui.format.value;
    const abort = new AbortController();
    const run = {
      id: ++state.runs, format, started: performance.now(), ttfaMs: null, totalMs: null,
      playbackStartMs: null, audioSeconds: 0, playedSeconds: 0, rtf: null, serverRtf: null, cache: null, requestId: null,
      done: false, error: null, fallback: null, stopPlayback: null,
    };
    current = { run, abort };
    state.lastRun = run;
    resetMetrics();
    ui.download.hidden = true;
    ui.player.removeAttribute("src");
    ui.player.load(); // drops the previous run's media
    ui.stop.disabled = false;
    setStatus("Synthesizing…");
    try {
      let fallback = null;
      if (format === "pcm" && !(await webAudioRuns())) {
        fallback = "Web Audio cannot play here, so the audio comes as one WAV file.";
      } else if (format === "mp3" && !mseSupports("audio/mpeg")) {
        fallback = "This browser cannot stream MP3 through MediaSource, so the audio comes as one file.";
      }
      run.fallback = fallback;
      if (fallback) setStatus(fallback);
      if (format === "pcm" && !fallback) {
        await speakPcm(run, abort.signal);
      } else if (format === "mp3" && !fallback) {
        await speakMp3Streamed(run, abort.signal);
      } else {
        await speakWholeFile(run, abort.signal, format === "pcm" ? "wav" : format);
      }
      ui.played.textContent = seconds(run.playedSeconds);
      setStatus(`Done: played ${seconds(run.playedSeconds)} of ${seconds(run.audioSeconds)}; ` +
        `first audio after ${Math.round(run.ttfaMs)} ms.${fallback ? " " + fallback : ""}`);
    } catch (error) {
      if (error.name === "AbortError" || abort.signal.aborted) {
        setStatus("Stopped.");
      } else {
        run.error = error.message;
        showError(error.status ? error.message : `Synthesis failed: ${error.message}`);
        setStatus("Failed.");
        const control = error.field && fieldControls[error.field];
        if (control) { control.setAttribute("aria-invalid", "true"); control.focus(); }
      }
    } finally {
      run.done = true;
      if (current && current.run === run) {
        current = null;
        ui.stop.disabled = true;
      }
    }
  }

  function stopSpeaking() {
    if (!current) return;
    current.abort.abort();
    if (current.run.stopPlayback) current.run.stopPlayback();
    ui.player.pause();
    current = null;
    ui.stop.disabled = true;
  }

  ui.form.addEventListener("submit", speak);
  ui.text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) speak(event);
  });
  ui.stop.addEventListener("click", () => { stopSpeaking(); setStatus("Stopped."); ui.speak.focus(); });
  ui.speed.addEventListener("input", () => { ui.speedValue.textContent = `${Number(ui.speed.value).toFixed(2)}×`; });
  ui.refresh.addEventListener("click", loadVoices);
  ui.uploadForm.addEventListener("submit", uploadVoice);
  document.addEventListener("keydown", (event) => { if (event.key === "Escape" && current) { stopSpeaking(); setStatus("Stopped."); } });
  loadVoices();
})();
