// DeepSight serve: the single page. Uses only the HTTP API of docs/serve-api.md; no framework and
// no network beyond this server, because the tool runs air-gapped.
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

// Cells are drawn at this size (longest side) whatever the model's input size, so that rows of
// different methods line up and small models (28 px) stay visible.
const DISPLAY_PX = 224;
const MAX_MATCHES = 20;
const POLL_MS = 300;

const state = {
  model: null, classes: [], methods: [], defaultLayer: '',
  image: null, imageName: '', thumbUrl: '',
  imageSeq: 0, // stale /api/classify answers (for an older image) are dropped by comparing this
  busy: false, job: null,
  options: new Map(), // option name -> {spec, users: [method names], row, input, usersEl}
  reportUrls: [], // Blob URLs of the report shown, revoked when another is opened
};

// ---------- small DOM and formatting helpers ----------

// el('span.a.b', {attrs}, ...children); a string or node in place of attrs is the first child.
function el(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split('.');
  const node = document.createElement(name);
  node.className = classes.join(' ');
  if (typeof attrs !== 'object' || attrs === null || attrs instanceof Node || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = {};
  }
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') node.classList.add(...String(v).split(' ').filter(Boolean));
    else if (k === 'text') node.textContent = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k === 'style') Object.assign(node.style, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  node.append(...children.flat().filter((c) => c != null && c !== false));
  return node;
}

// Classes picked by search can be far down the ranking: a fixed "0.0 %" would hide their order.
const fmtProb = (p) =>
  (!Number.isFinite(p) ? '–' : p >= 0.001 ? `${(p * 100).toFixed(1)} %` : p.toExponential(1));

const fmtSeconds = (s) => (typeof s === 'number' ? `${s.toFixed(s < 10 ? 3 : 1)} s` : '');
const fmtPasses = (passes) =>
  Object.entries(passes || {}).map(([k, v]) => `${v} ${k.replace(/_/g, ' ')}`).join(' · ');
const fmtBytes = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${Math.ceil(n / 1024)} KiB`);
const isTrue = (v) => v === true || v === 'true';

// crypto.randomUUID would need a secure context, which a server reached by LAN address is not.
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const newJobId = () => `j${hex(crypto.getRandomValues(new Uint8Array(12)))}`;

// ---------- API, status and errors ----------

const apiError = (status, message) => Object.assign(new Error(message), { status });

async function api(path, init) {
  const resp = await fetch(path, init).catch((e) => {
    throw apiError(0, `cannot reach the server (${e.message})`);
  });
  if (resp.ok) return resp;
  // A body that is not JSON (a proxy's page, say) leaves the status line as the message.
  const body = await resp.json().catch(() => null);
  let msg = (body && body.error) || `${resp.status} ${resp.statusText}`;
  const retry = resp.headers.get('Retry-After');
  if (resp.status === 503 && retry) msg += ` (server busy: retry in ${retry} s)`;
  throw apiError(resp.status, msg);
}

const apiJson = async (path, init) => (await api(path, init)).json();

const setStatus = (word) => Object.assign($('#status'), { textContent: word, className: `status ${word}` });
const showError = (msg) => { $('#error-text').textContent = msg; $('#error').hidden = false; };
const hideError = () => { $('#error').hidden = true; };

// keepStatus: an error beside the main work (a curve, a classification during an explain) must
// not overwrite the status word of the work still running.
function fail(e, keepStatus = false) {
  showError(e && e.message ? e.message : String(e));
  if (!keepStatus) setStatus('error');
}

// ---------- start-up ----------

async function init() {
  bindStatic();
  try {
    const [model, methods, layers] = await Promise.all(
      ['/api/model', '/api/methods', '/api/layers'].map((p) => apiJson(p)));
    Object.assign(state, { model, methods, classes: model.classes || [] });
    $('#model-desc').textContent = model.description || '';
    const size = (model.input_size || []).join('×');
    $('#model-desc').title = `${size} input · ${state.classes.length} classes`;
    renderSamples(model.samples || []);
    renderMethods(methods);
    renderLayers(layers, model.default_layer);
    setStatus('ready');
  } catch (e) {
    fail(e);
  }
  refreshHealth();
}

// The header's load figures are a courtesy: a failure here is silent, the requests that matter
// report their own errors.
async function refreshHealth() {
  const h = await apiJson('/api/health').catch(() => null);
  if (!h) return;
  if (h.model) $('#model-desc').textContent = h.model;
  const workers = `${h.workers} worker${h.workers === 1 ? '' : 's'}`;
  $('#server-load').textContent = `${workers} · ${h.running} running · ${h.waiting} waiting`;
}

function bindStatic() {
  const on = (target, ev, fn) => (typeof target === 'string' ? $(target) : target).addEventListener(ev, fn);
  on('#tab-explain', 'click', () => showTab('explain'));
  on('#tab-report', 'click', () => showTab('report'));
  on('#error-close', 'click', hideError);
  const useFile = (f) => f && setImage(f, f.name);
  on('#file-input', 'change', (e) => useFile(e.target.files[0]));
  const zone = $('#drop-zone');
  on(zone, 'dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  on(zone, 'dragleave', () => zone.classList.remove('over'));
  on(zone, 'drop', (e) => { zone.classList.remove('over'); useFile(e.dataTransfer.files[0]); });
  // A file dropped beside the zone would otherwise make the browser navigate away from the page.
  on(window, 'dragover', (e) => e.preventDefault());
  on(window, 'drop', (e) => e.preventDefault());
  on('#class-search', 'input', (e) => renderMatches(e.target.value));
  on('#class-search', 'focus', (e) => renderMatches(e.target.value));
  const outside = (e) => !e.target.closest('.class-search-box');
  on(document, 'click', (e) => { if (outside(e)) $('#class-matches').hidden = true; });
  on('#class-search', 'keydown', (e) => {
    const first = $('#class-matches .class-match');
    if (e.key === 'Enter' && first) first.click();
    if (e.key === 'Escape') renderMatches((e.target.value = ''));
  });
  on('#opacity', 'input', applyOpacity);
  on('#explain-btn', 'click', explain);
  on('#cancel-btn', 'click', cancel);
  on('#report-input', 'change', (e) => loadReport(e.target.files));
}

const showTab = (name) => ['explain', 'report'].forEach((t) => {
  $(`#${t}`).hidden = t !== name;
  $(`#tab-${t}`).classList.toggle('active', t === name);
  $(`#tab-${t}`).setAttribute('aria-selected', String(t === name));
});

// ---------- image and classification ----------

function renderSamples(samples) {
  $('#samples').replaceChildren(...samples.map((name) => {
    const stem = name.replace(/\.[^.]*$/, '');
    const attrs = { type: 'button', id: `sample-${stem}`, title: `use the shipped sample ${name}` };
    return el('button.sample', { ...attrs, text: stem, onclick: () => chooseSample(name) });
  }));
}

function chooseSample(name) {
  api(`/samples/${encodeURIComponent(name)}`).then((r) => r.blob())
    .then((blob) => setImage(blob, name), (e) => fail(e, state.busy));
}

function setImage(blob, name) {
  const max = state.model && state.model.max_upload_bytes;
  if (max && blob.size > max) {
    return showError(`${name} is ${fmtBytes(blob.size)}, over the server's upload limit of ${fmtBytes(max)}`);
  }
  Object.assign(state, { image: blob, imageName: name || 'image' });
  if (state.thumbUrl) URL.revokeObjectURL(state.thumbUrl);
  state.thumbUrl = URL.createObjectURL(blob);
  Object.assign($('#thumb'), { src: state.thumbUrl, hidden: false });
  $('#drop-zone').classList.add('has-image');
  $('#image-name').textContent = `${state.imageName} · ${fmtBytes(blob.size)}`;
  $('#explain-btn').disabled = state.busy;
  classify();
}

async function classify() {
  const seq = ++state.imageSeq;
  $('#top5').replaceChildren();
  if (!state.busy) setStatus('classifying');
  const fd = new FormData();
  fd.append('image', state.image, state.imageName);
  try {
    const r = await apiJson('/api/classify', { method: 'POST', body: fd });
    if (seq !== state.imageSeq) return;
    renderTop5(r.top || []);
    hideError();
    if ($('#status').textContent === 'classifying') setStatus('ready');
  } catch (e) {
    if (seq === state.imageSeq) fail(e, state.busy);
  }
}

const classPick = (index, checked) => el('input.class-pick', { type: 'checkbox', value: index, checked });
const updateChosenBox = () => { $('#chosen-box').hidden = !$('#chosen-classes li'); };

function renderTop5(top) {
  $('#top5').replaceChildren(...top.map((c, i) => {
    // A class chosen by search that is now in the top 5 would otherwise be listed twice.
    const dup = $(`#chosen-classes input.class-pick[value="${c.index}"]`);
    const checked = i === 0 || Boolean(dup && dup.checked);
    if (dup) dup.closest('li').remove();
    return el('li', { dataset: { index: c.index } },
      el('label.top-row', { title: `class ${c.index}` },
        classPick(c.index, checked), el('span.class-name', c.name),
        el('span.bar', el('span.fill', { style: { width: `${Math.min(1, c.probability) * 100}%` } })),
        el('span.prob', fmtProb(c.probability))));
  }));
  updateChosenBox();
}

function renderMatches(query) {
  const box = $('#class-matches');
  box.replaceChildren();
  const q = query.trim().toLowerCase();
  box.hidden = !q;
  if (!q) return;
  let total = 0;
  state.classes.forEach((name, index) => {
    if (!name.toLowerCase().includes(q) && String(index) !== q) return;
    if (++total > MAX_MATCHES) return;
    const pick = () => { addChosenClass(index); renderMatches(($('#class-search').value = '')); };
    box.append(el('li', el('button.class-match', { type: 'button', dataset: { index }, onclick: pick },
      el('span', name), el('span.muted.small', { text: ` #${index}` }))));
  });
  const more = total > MAX_MATCHES && `${total - MAX_MATCHES} more: refine the search`;
  if (total === 0 || more) box.append(el('li.muted.small.none', more || 'no class matches'));
}

function addChosenClass(index) {
  const existing = $(`input.class-pick[value="${index}"]`);
  if (existing) { existing.checked = true; return; }
  const li = el('li', { dataset: { index } },
    el('label', classPick(index, true),
      el('span.class-name', state.classes[index]),
      el('span.muted.small', { text: ` #${index}` })),
    el('button.remove-class.link-btn', {
      type: 'button', title: 'remove', text: '×', onclick: () => { li.remove(); updateChosenBox(); },
    }));
  $('#chosen-classes').append(li);
  updateChosenBox();
}

// ---------- methods, options, layers ----------

function renderMethods(methods) {
  $('#methods').replaceChildren(...methods.map((m) => {
    const doc = el('pre.method-doc', { text: m.doc || '(no documentation)', hidden: true });
    const toggle = () => { doc.hidden = !doc.hidden; docBtn.classList.toggle('active', !doc.hidden); };
    const docBtn = el('button.doc-btn', { type: 'button', title: 'documentation', onclick: toggle }, '?');
    const pick = el('input.method-pick', { type: 'checkbox', value: m.name, checked: m.name === 'gradcam' });
    pick.addEventListener('change', updateOptions);
    const signed = m.signed && el('span.badge', { text: 'signed', title: 'negative and positive evidence' });
    return el('li.method', { dataset: { method: m.name } },
      el('div.method-head',
        el('label.method-label', pick, el('span.method-name', m.name), signed,
          el('span.method-title', m.title || '')),
        docBtn),
      doc);
  }));
  buildOptions(methods);
  updateOptions();
}

// One field per option name, whichever methods declare it, so a shared option (seed, batch size,
// the ig_* options SmoothGrad reuses) cannot be sent twice with two values. The first method's
// schema wins if two ever disagreed.
function buildOptions(methods) {
  $('#options').replaceChildren();
  state.options.clear();
  for (const m of methods) {
    for (const spec of m.options || []) {
      const known = state.options.get(spec.name);
      if (known) { known.users.push(m.name); continue; }
      const input = optionInput(spec);
      const usersEl = el('span.opt-users.muted.small');
      const row = el('div.opt-row', { dataset: { option: spec.name } },
        el('label.opt-label', el('code', spec.name), input),
        el('div.opt-help.muted.small', spec.help || '', ' ', usersEl));
      state.options.set(spec.name, { spec, users: [m.name], row, input, usersEl });
      $('#options').append(row);
    }
  }
}

// Float options are f32 on the server: their defaults arrive as 0.15000000596046448.
const f32 = (v) => Math.fround(Number(v));
const shownDefault = (spec) => (spec.default == null ? ''
  : spec.kind === 'float' ? Number(f32(spec.default).toPrecision(7)) : spec.default);

function optionInput(spec) {
  const { name, min, max } = spec;
  const numeric = spec.kind === 'int' || spec.kind === 'float';
  const selected = (c) => String(c) === String(spec.default);
  const choices = (spec.choices || []).map((c) => el('option', { value: c, text: c, selected: selected(c) }));
  const input = spec.kind === 'bool'
    ? el('input.opt', { name, type: 'checkbox', checked: isTrue(spec.default) })
    : spec.kind === 'choice' ? el('select.opt', { name }, choices)
    : el('input.opt', {
      name, type: numeric ? 'number' : 'text', min, max, step: numeric && (spec.kind === 'int' ? 1 : 'any'),
      value: shownDefault(spec),
    });
  // A changed field is marked: those are exactly the ones the next request will send.
  input.addEventListener('input', () => input.classList.toggle('changed', optionValue(spec, input) !== null));
  return input;
}

// The value to send, or null when the field holds the default: only changed options are sent, so
// the server's defaults stay the single source of truth.
function optionValue(spec, input) {
  if (spec.kind === 'bool') return input.checked === isTrue(spec.default) ? null : String(input.checked);
  const v = String(input.value).trim();
  if (v === '' || spec.default == null) return v === '' ? null : v;
  if (spec.kind === 'int') return Number(v) === Number(spec.default) ? null : v;
  if (spec.kind === 'float') return f32(v) === f32(spec.default) ? null : v;
  return v === String(spec.default) ? null : v;
}

const checkedMethods = () => $$('input.method-pick:checked').map((i) => i.value);

function updateOptions() {
  const checked = new Set(checkedMethods());
  let shown = 0;
  for (const o of state.options.values()) {
    const users = o.users.filter((u) => checked.has(u));
    o.row.hidden = users.length === 0;
    o.usersEl.textContent = users.length ? `(${users.join(', ')})` : '';
    if (users.length) shown += 1;
  }
  $('#options-empty').hidden = shown > 0;
}

function renderLayers(layers, modelDefault) {
  state.defaultLayer = layers.default || modelDefault || '';
  const spatial = (layers.layers || []).filter((l) => l.spatial);
  $('#layer').replaceChildren(...spatial.map((l) => {
    const shape = Array.isArray(l.shape) ? ` [${l.shape.join('×')}]` : '';
    const isDefault = l.name === state.defaultLayer;
    const text = `${l.name}${l.op ? ` · ${l.op}` : ''}${shape}${isDefault ? ' (default)' : ''}`;
    return el('option', { value: l.name, selected: isDefault, text });
  }));
}

// ---------- explain, progress, cancel ----------

function setBusy(busy, job = null) {
  Object.assign(state, { busy, job: busy ? job : null });
  $('#explain-btn').disabled = busy || !state.image;
  Object.assign($('#cancel-btn'), { hidden: !busy, disabled: false });
  $('#progress').hidden = !busy;
  $('#progress-bar').removeAttribute('value');
  $('#progress-text').textContent = 'sending…';
}

async function explain() {
  if (state.busy) return;
  if (!state.image) return showError('choose an image first');
  const methods = checkedMethods();
  if (!methods.length) return showError('check at least one method');
  const job = newJobId();
  const fd = new FormData();
  fd.append('image', state.image, state.imageName);
  fd.append('methods', methods.join(','));
  for (const c of new Set($$('input.class-pick:checked').map((i) => i.value))) fd.append('class', c);
  const layer = $('#layer').value;
  if (layer && layer !== state.defaultLayer) fd.append('layer', layer);
  fd.append('colormap', $('#colormap').value);
  fd.append('alpha', $('#opacity').value);
  if ($('#probability').checked) fd.append('probability', 'true');
  for (const [name, o] of state.options) {
    const v = o.row.hidden ? null : optionValue(o.spec, o.input);
    if (v !== null) fd.append(name, v);
  }
  fd.append('job', job);
  setBusy(true, job);
  setStatus('explaining');
  const poller = pollProgress(job);
  try {
    const r = await apiJson('/api/explain', { method: 'POST', body: fd });
    poller.stop();
    await renderResult(r, methods);
    hideError();
    setStatus('done');
  } catch (e) {
    if (e.status === 409) setStatus('cancelled');
    else fail(e);
  } finally {
    poller.stop();
    setBusy(false);
    refreshHealth();
  }
}

// Each poll waits for the previous answer, so a slow server is never sent a pile of requests.
function pollProgress(job) {
  let stopped = false;
  let timer = 0;
  const tick = async () => {
    // Progress is advisory: the explain request itself reports any real failure.
    const p = await apiJson(`/api/progress/${job}`).catch(() => null);
    if (p && !stopped) renderProgress(p);
    if (!stopped) timer = setTimeout(tick, POLL_MS);
  };
  timer = setTimeout(tick, POLL_MS / 2);
  return { stop() { stopped = true; clearTimeout(timer); } };
}

function renderProgress(p) {
  const bar = $('#progress-bar');
  const text = $('#progress-text');
  const running = p.state === 'running' || p.state === 'done';
  const within = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
  if (running && p.to_explain > 0) bar.value = Math.min(1, (p.explained + within) / p.to_explain);
  else bar.removeAttribute('value');
  if (!running) {
    const words = { queued: 'queued: waiting for a free worker', cancelled: 'cancelling…' };
    text.textContent = words[p.state] || (p.state === 'failed' ? 'failed' : 'starting…');
    return;
  }
  const method = p.method && (p.total > 0 ? `${p.method}: ${p.done}/${p.total}` : p.method);
  const overall = p.to_explain > 0 && `explanations ${p.explained}/${p.to_explain}`;
  text.textContent = [method, overall].filter(Boolean).join(' · ') || p.state;
}

async function cancel() {
  if (!state.job) return;
  $('#cancel-btn').disabled = true;
  $('#progress-text').textContent = 'cancelling…';
  await api(`/api/cancel/${state.job}`, { method: 'POST' })
    .catch((e) => { fail(e, true); $('#cancel-btn').disabled = false; });
}

// ---------- results ----------

// Signed maps carry sqrt|v| in their alpha channel already; 1.6 alpha reproduces the server's own
// overlay (serve-api.md), so the slider matches the downloadable PNG made at the same alpha.
const heatOpacity = (signed, alpha) => (signed ? Math.min(1, 1.6 * alpha) : alpha);

function applyOpacity() {
  const a = Number($('#opacity').value);
  $('#opacity-value').textContent = a.toFixed(2);
  for (const img of $$('img.heatmap')) img.style.opacity = heatOpacity(img.dataset.signed === 'true', a);
}

async function renderResult(r, requested) {
  const size = r.size || (state.model && state.model.input_size) || [DISPLAY_PX, DISPLAY_PX];
  const scale = DISPLAY_PX / Math.max(size[0], size[1]);
  const dims = { w: Math.round(size[1] * scale), h: Math.round(size[0] * scale) };
  // Small inputs (28 px) are upscaled: blurred pixels would smear the map's own resolution.
  const pixelated = Math.max(size[0], size[1]) < DISPLAY_PX / 2;
  const classes = r.classes || [];
  const maps = r.maps || {};
  // Rows in the order the methods are listed on the page, not the JSON's (possibly sorted) keys.
  const order = [...new Set([...requested.filter((m) => m in maps), ...Object.keys(maps)])];
  const titles = new Map(state.methods.map((m) => [m.name, m.title]));
  const top1 = r.top && r.top[0] ? r.top[0].index : null;
  const style = { gridTemplateColumns: `minmax(8rem, 12rem) repeat(${classes.length}, ${dims.w}px)` };
  const grid = el('div.result-grid', { class: pixelated && 'pixelated', style },
    el('div.corner.muted.small', 'method \\ class'));
  for (const c of classes) {
    const sub = `#${c.index} · p = ${fmtProb(c.probability)}${c.index === top1 ? ' · top-1' : ''}`;
    grid.append(el('div.col-head', { dataset: { class: c.index } },
      el('div.class-name', c.name), el('div.muted.small', sub)));
  }
  for (const name of order) {
    const m = maps[name];
    grid.append(el('div.row-head',
      el('div.method-name', name),
      el('div.small', titles.get(name) || ''),
      el('div.muted.small', [fmtSeconds(m.seconds), fmtPasses(m.passes)].filter(Boolean).join(' · ')),
      m.signed && el('span.badge', 'signed')));
    for (const c of classes) grid.append(resultCell(r, name, m, c, dims));
  }
  const box = $('#results');
  box.replaceChildren(grid);
  applyOpacity();
  const passes = fmtPasses(r.passes);
  $('#results-summary').textContent =
    [`result ${r.id}`, fmtSeconds(r.seconds), passes && `passes: ${passes}`].filter(Boolean).join(' · ');
  $('#raw-link').href = `/api/result/${encodeURIComponent(r.id)}/maps.safetensors`;
  $('#raw-link').setAttribute('download', `${r.id}.maps.safetensors`);
  $('#results-bar').hidden = false;
  // "done" should mean the maps are on screen, not merely that the JSON arrived.
  await Promise.all($$('img', box).map((img) => (img.decode ? img.decode().catch(() => {}) : null)));
}

function resultCell(r, method, m, c, dims) {
  let pc = (m.per_class || []).find((p) => p.class === c.index);
  if (!pc && m.class === c.index) pc = { class: c.index, png: m.png, heatmap: m.heatmap, extras: [] };
  const cell = el('div.cell', { dataset: { method, class: c.index } });
  if (!pc) return Object.assign(cell, { className: 'cell empty', textContent: 'no map for this class' });
  const signed = String(Boolean(m.signed));
  cell.append(
    el('div.stack', { style: { width: `${dims.w}px`, height: `${dims.h}px` } },
      el('img.input', { src: r.input, alt: 'model input' }),
      el('img.heatmap', { src: pc.heatmap, alt: `${method} map, ${c.name}`, dataset: { signed } })),
    el('div.cell-actions',
      el('a.download-png', { href: pc.png, download: `${method}.${c.index}.png`, text: 'PNG' }),
      el('button.curves-btn', {
        type: 'button', text: 'curves', title: 'deletion and insertion curves',
        onclick: (e) => toggleCurves(cell, e.currentTarget, r.id, method, c.index, dims.w),
      })),
    el('div.curves-box'));
  const extras = (pc.extras || []).map((x) => el('figure.extra-fig',
    el('img.extra', {
      src: x.png, alt: x.title || x.name, title: 'click to enlarge',
      onclick: (e) => e.currentTarget.classList.toggle('zoomed'),
    }),
    el('figcaption.small', x.title || x.name)));
  if (extras.length) cell.append(el('div.extras', extras));
  return cell;
}

// A second click hides the curves again; each show asks anew (the result may have left the cache).
async function toggleCurves(cell, btn, id, method, cls, width) {
  const box = $('.curves-box', cell);
  btn.classList.remove('active');
  if ($('svg.curves', box)) return box.replaceChildren();
  Object.assign(btn, { disabled: true, textContent: 'curves…' });
  const body = JSON.stringify({ id, method, class: cls });
  await apiJson('/api/curves', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body })
    .then((data) => { box.replaceChildren(curvesSvg(data, width)); hideError(); }, (e) => fail(e, true));
  Object.assign(btn, { disabled: false, textContent: 'curves' });
  btn.classList.toggle('active', Boolean($('svg.curves', box)));
}

function svgEl(tag, attrs, text = '') {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  node.textContent = text;
  return node;
}

function curvesSvg(data, W) {
  const m = { l: 30, r: 8, t: 8, b: 30 };
  const plotH = Math.round(W * 0.55);
  const H = m.t + plotH + m.b + 34; // 34: the two legend lines
  const pw = W - m.l - m.r;
  const x = (f) => m.l + f * pw;
  // Scores are probabilities; clamping keeps a stray value from drawing outside the frame.
  const y = (p) => m.t + (1 - Math.max(0, Math.min(1, p))) * plotH;
  const svg = svgEl('svg', { class: 'curves', width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img' });
  const add = (tag, attrs, text) => svg.append(svgEl(tag, attrs, text));
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    add('line', { class: 'grid', x1: x(0), x2: x(1), y1: y(t), y2: y(t) });
    add('line', { class: 'grid', x1: x(t), x2: x(t), y1: y(0), y2: y(1) });
  }
  for (const t of [0, 0.5, 1]) {
    add('text', { class: 'tick', x: m.l - 4, y: y(t) + 3, 'text-anchor': 'end' }, String(t));
    add('text', { class: 'tick', x: x(t), y: m.t + plotH + 12, 'text-anchor': 'middle' }, String(t));
  }
  const midY = m.t + plotH / 2;
  const axisY = m.t + plotH + 24;
  add('text', { class: 'axis', x: x(0.5), y: axisY, 'text-anchor': 'middle' }, 'fraction of pixels');
  add('text', { class: 'axis', x: 9, y: midY, 'text-anchor': 'middle', transform: `rotate(-90 9 ${midY})` },
    'probability');
  add('rect', { class: 'frame', x: x(0), y: y(1), width: pw, height: plotH });
  // Deletion: lower AUC is better; insertion: higher (the legend is too narrow to say so).
  [['deletion', data.deletion], ['insertion', data.insertion]].forEach(([name, s], i) => {
    const scores = (s && s.scores) || [];
    const n = scores.length;
    const pts = scores.map((v, k) => `${x(n > 1 ? k / (n - 1) : 0).toFixed(1)},${y(v).toFixed(1)}`);
    add('polyline', { class: `curve ${name}`, points: pts.join(' ') });
    const ly = m.t + plotH + m.b + 6 + i * 15;
    add('line', { class: `curve ${name}`, x1: m.l, x2: m.l + 18, y1: ly, y2: ly });
    const auc = s && typeof s.auc === 'number' ? s.auc.toFixed(3) : '–';
    add('text', { class: 'legend', x: m.l + 24, y: ly + 4 }, `${name} AUC ${auc}`);
  });
  return svg;
}

// ---------- evaluation report (client side only: nothing is uploaded) ----------

async function loadReport(fileList) {
  for (const u of state.reportUrls) URL.revokeObjectURL(u);
  state.reportUrls = [];
  const view = $('#report-view');
  view.replaceChildren();
  // webkitRelativePath starts with the chosen folder's own name: paths are kept relative to it.
  const files = Array.from(fileList || []).map((file) => {
    const parts = (file.webkitRelativePath || file.name).split('/');
    return { file, path: parts.length > 1 ? parts.slice(1).join('/') : parts[0], depth: parts.length };
  });
  if (!files.length) return;
  files.sort((a, b) => a.depth - b.depth || a.path.localeCompare(b.path));
  const find = (name) => files.find((f) => f.path.split('/').pop() === name); // the shallowest
  const folder = fileList[0].webkitRelativePath.split('/')[0];
  view.append(el('p.muted.small', { text: `${folder ? `${folder}: ` : ''}${files.length} files` }));
  const [md, csv] = ['results.md', 'results.csv'].map(find);
  try {
    if (md) view.append(el('section.md', renderMarkdown(await md.file.text())));
    else if (csv) {
      const rows = parseCsv(await csv.file.text());
      view.append(el('h3', csv.path), tableEl(rows[0] || [], rows.slice(1), []));
    } else {
      const text = 'No results.md or results.csv here: is this an output folder of deepsight evaluate?';
      view.append(el('p.notice', { text }));
    }
  } catch (e) {
    view.append(el('p.notice', { text: `cannot read the report: ${e.message}` }));
  }
  // The top-level plots first, then sub-folders' pictures; loaded lazily, as a sub-folder (errors/)
  // can hold one picture per image of the data set.
  const images = files.filter((f) => /\.(png|jpe?g|svg|webp|gif)$/i.test(f.path));
  if (!images.length) return;
  view.append(el('h3', 'Figures'), el('div.figures', images.map((f) => {
    const url = URL.createObjectURL(f.file);
    state.reportUrls.push(url);
    return el('figure.report-fig',
      el('a', { href: url, target: '_blank', rel: 'noopener' }, el('img', { src: url, loading: 'lazy' })),
      el('figcaption', f.path));
  })));
}

// RFC 4180 as evaluate writes it: a field is quoted when it holds a comma, "" is a quote.
function parseCsv(text) {
  const field = /("(?:[^"]|"")*"|[^,]*)(,|$)/g;
  return text.split(/\r?\n/).filter((l) => l.trim()).map((line) => {
    const cells = [];
    for (const m of line.matchAll(field)) {
      cells.push(m[1].startsWith('"') ? m[1].slice(1, -1).replace(/""/g, '"') : m[1]);
      if (!m[2]) break;
    }
    return cells;
  });
}

// Just the Markdown deepsight evaluate writes: headings, pipe tables and paragraphs, with `code`
// and **bold** inline. A single * is not emphasis: the formulas use it.
function renderMarkdown(text) {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  const frag = document.createDocumentFragment();
  const para = [];
  const flush = () => para.length && frag.append(el('p', inline(para.splice(0).join(' '))));
  const isRow = (l) => /^\s*\|/.test(l);
  const isSep = (l) => /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/.test(l);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const h = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (!line.trim() || h || isRow(line)) flush();
    if (h) {
      frag.append(el(`h${Math.min(6, h[1].length + 2)}`, inline(h[2])));
    } else if (isRow(line) && i + 1 < lines.length && isSep(lines[i + 1])) {
      const alignOf = (c) => (/-:$/.test(c) ? (/^:/.test(c) ? 'center' : 'right') : '');
      const align = splitRow(lines[i + 1]).map(alignOf);
      const head = splitRow(line);
      const body = [];
      for (i += 1; i + 1 < lines.length && isRow(lines[i + 1]);) body.push(splitRow(lines[++i]));
      frag.append(tableEl(head, body, align));
    } else if (line.trim()) {
      para.push(line.trim());
    }
  }
  flush();
  return frag;
}

function splitRow(line) {
  const s = line.trim().replace(/^\|/, '').replace(/(?<!\\)\|$/, '');
  return s.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|'));
}

function inline(s) {
  const out = [];
  const re = /`([^`]+)`|\*\*([^*]+)\*\*/g;
  let last = 0;
  for (const m of s.matchAll(re)) {
    out.push(s.slice(last, m.index), m[1] != null ? el('code', m[1]) : el('strong', m[2]));
    last = m.index + m[0].length;
  }
  out.push(s.slice(last));
  return out;
}

const NUMERIC = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*%?(\s*\(.*\))?$/i;

function tableEl(head, body, align) {
  const cell = (tag, v, k) => {
    const cls = align[k] === 'center' ? 'center' : align[k] === 'right' || NUMERIC.test(v) ? 'num' : null;
    return el(tag, { class: tag === 'td' && cls }, inline(v == null ? '' : v));
  };
  const rows = body.map((row) => el('tr', head.map((_, k) => cell('td', row[k], k))));
  return el('div.table-wrap',
    el('table.report-table', el('thead', el('tr', head.map((h, k) => cell('th', h, k)))), el('tbody', rows)));
}

// Deferred scripts run before DOMContentLoaded, so the listener cannot miss it.
document.addEventListener('DOMContentLoaded', init);
