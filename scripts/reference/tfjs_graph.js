#!/usr/bin/env node
// Reference for umgf's TF.js graph interpreter: runs a TF.js graph model (model.json + weight shards) with
// @tensorflow/tfjs-core + -converter + -backend-cpu, the pure-JS CPU backend (no tfjs-node, no native
// addon), and writes the named outputs as raw float32. See scripts/reference/README.md.
//
//   node scripts/reference/tfjs_graph.js --model models/detector/centernet.json --input in.f32 \
//     --shape 1,512,512,3 --outputs tower_0/keypoints,tower_0/wh,tower_0/detections --out-dir DIR [--repeat N]
//
// Modules come from <repo>/.node-ref/node_modules (REFERENCE=1 setup/setup.sh), found from this file's
// path, so no NODE_PATH is needed. Files are read from disk only (a custom IOHandler; never fetch/http).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { createRequire } = require('module');

const ROOT = path.resolve(__dirname, '..', '..');
const NODE_REF = path.join(ROOT, '.node-ref');

class UsageError extends Error {}

function fail(msg) {
  process.stderr.write(`tfjs_graph: ERROR: ${msg}\n`);
  process.exit(1);
}

const USAGE = `usage: node scripts/reference/tfjs_graph.js --model MODEL.json --input IN.f32 --shape D0,D1,...
       --outputs NAME[,NAME...] --out-dir DIR [--repeat N]
  IN.f32: raw little-endian float32, row-major, of --shape (e.g. 1,512,512,3 NHWC).
  Writes DIR/<i>.f32 (output i of --outputs, as float32) and DIR/outputs.json.`;

function parseArgs(argv) {
  const opts = { repeat: 1 };
  const known = { '--model': 'model', '--input': 'input', '--shape': 'shape', '--outputs': 'outputs',
    '--out-dir': 'outDir', '--repeat': 'repeat' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') { process.stdout.write(USAGE + '\n'); process.exit(0); }
    let key = a, val;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) { key = a.slice(0, eq); val = a.slice(eq + 1); }
    if (!(key in known)) throw new UsageError(`unknown argument ${JSON.stringify(a)}`);
    if (val === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`${key} needs a value`);
      val = argv[++i];
    }
    opts[known[key]] = val;
  }
  for (const k of ['model', 'input', 'shape', 'outputs', 'outDir']) {
    if (opts[k] === undefined) {
      const flag = Object.keys(known).find((f) => known[f] === k);
      throw new UsageError(`missing ${flag}`);
    }
  }
  const shape = String(opts.shape).split(',').map((s) => s.trim());
  if (shape.some((s) => !/^\d+$/.test(s))) throw new UsageError(`--shape ${opts.shape}: not a list of integers`);
  opts.shape = shape.map(Number);
  opts.outputs = String(opts.outputs).split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (opts.outputs.length === 0) throw new UsageError('--outputs is empty');
  if (!/^\d+$/.test(String(opts.repeat)) || Number(opts.repeat) < 1) {
    throw new UsageError(`--repeat ${opts.repeat}: not a positive integer`);
  }
  opts.repeat = Number(opts.repeat);
  return opts;
}

function loadTf() {
  const pkg = path.join(NODE_REF, 'package.json');
  if (!fs.existsSync(path.join(NODE_REF, 'node_modules', '@tensorflow', 'tfjs-core', 'package.json'))) {
    fail(`${path.join(NODE_REF, 'node_modules')}: @tensorflow/tfjs-core not installed; run REFERENCE=1 setup/setup.sh`);
  }
  // Resolve from .node-ref/node_modules; the backend and converter resolve tfjs-core from there too, so
  // there is one tfjs-core instance (and one engine) in the process.
  const req = createRequire(pkg);
  const tf = req('@tensorflow/tfjs-core');
  req('@tensorflow/tfjs-backend-cpu'); // registers the 'cpu' backend and its kernels
  const tfconv = req('@tensorflow/tfjs-converter');
  return { tf, tfconv };
}

function readFile(file, what) {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    fail(`${what} ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
}

// Copy a Buffer's bytes into a fresh ArrayBuffer (a Buffer may be a view into a shared pool).
function toArrayBuffer(buf) {
  const ab = new ArrayBuffer(buf.byteLength);
  new Uint8Array(ab).set(buf);
  return ab;
}

const DTYPE_BYTES = { float32: 4, int32: 4, bool: 1, complex64: 8, uint8: 1, uint16: 2, float16: 2 };

// Bytes a weight takes in its shard, or null where it cannot be known up front (strings).
function weightBytes(spec) {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const dt = spec.quantization ? spec.quantization.dtype : spec.dtype;
  return dt in DTYPE_BYTES ? n * DTYPE_BYTES[dt] : null;
}

// model.json + its shards (paths relative to model.json) -> ModelArtifacts.
function loadArtifacts(modelPath) {
  const text = readFile(modelPath, 'model').toString('utf8');
  let json;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(`model ${modelPath}: not JSON: ${e.message}`);
  }
  if (json.modelTopology == null) fail(`model ${modelPath}: no modelTopology`);
  if (json.format != null && json.format !== 'graph-model') fail(`model ${modelPath}: format ${json.format}, not graph-model`);
  const dir = path.dirname(modelPath);
  const weightSpecs = [];
  const shards = [];
  for (const group of json.weightsManifest || []) {
    let want = 0;
    for (const spec of group.weights) {
      weightSpecs.push(spec);
      const b = weightBytes(spec);
      want = want === null || b === null ? null : want + b;
    }
    const bufs = group.paths.map((p) => readFile(path.join(dir, p), 'weight shard'));
    const got = bufs.reduce((a, b) => a + b.byteLength, 0);
    if (want !== null && got !== want) {
      fail(`weight shard(s) ${group.paths.map((p) => path.join(dir, p)).join(', ')}: ${got} bytes, ` +
        `the manifest in ${modelPath} needs ${want}`);
    }
    shards.push(...bufs);
  }
  const weightData = toArrayBuffer(Buffer.concat(shards));
  return {
    modelTopology: json.modelTopology,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
    signature: json.signature,
    userDefinedMetadata: json.userDefinedMetadata,
    modelInitializer: json.modelInitializer,
    initializerSignature: json.initializerSignature,
    weightSpecs,
    weightData,
  };
}

function readInput(file, shape) {
  const buf = readFile(file, 'input');
  const n = shape.reduce((a, b) => a * b, 1);
  if (buf.byteLength !== n * 4) {
    fail(`input ${file}: ${buf.byteLength} bytes, shape [${shape}] of float32 needs ${n * 4}`);
  }
  const data = new Float32Array(toArrayBuffer(buf));
  if (os.endianness() !== 'LE') {
    const dv = new DataView(data.buffer);
    for (let i = 0; i < n; i++) data[i] = dv.getFloat32(i * 4, true);
  }
  return data;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function asLeBytes(f32) {
  if (os.endianness() === 'LE') return Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength);
  const out = Buffer.alloc(f32.length * 4);
  for (let i = 0; i < f32.length; i++) out.writeFloatLE(f32[i], i * 4);
  return out;
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) fail(`${e.message}\n${USAGE}`);
    throw e;
  }
  const { tf, tfconv } = loadTf();
  tf.enableProdMode(); // silences the "use tfjs-node" console hint; the kernels are the same
  if (!(await tf.setBackend('cpu')) || tf.getBackend() !== 'cpu') fail('could not select the tfjs cpu backend');
  await tf.ready();

  const modelPath = path.resolve(opts.model);
  const artifacts = loadArtifacts(modelPath);
  const input = readInput(path.resolve(opts.input), opts.shape);

  const tLoad = process.hrtime.bigint();
  const handler = { load: async () => artifacts };
  const model = await tfconv.loadGraphModel(handler);
  const loadMs = Number(process.hrtime.bigint() - tLoad) / 1e6;

  const inputs = model.inputs;
  if (inputs.length !== 1) {
    fail(`model ${modelPath}: ${inputs.length} inputs (${inputs.map((t) => t.name).join(', ')}), expected 1`);
  }
  const inputName = inputs[0].name;
  const known = new Set(model.outputs.map((t) => t.name).concat(model.outputNodes || []));
  const unknown = opts.outputs.filter((o) => !known.has(o) && !model.executor.graph.nodes[o.split(':')[0]]);
  if (unknown.length) fail(`model ${modelPath}: no output or node named ${unknown.join(', ')}`);

  const x = tf.tensor(input, opts.shape, 'float32');
  const times = [];
  let result = null;
  let identical = true;
  for (let r = 0; r < opts.repeat; r++) {
    const t0 = process.hrtime.bigint();
    let outs = model.execute({ [inputName]: x }, opts.outputs);
    if (!Array.isArray(outs)) outs = [outs];
    // the CPU backend computes eagerly; dataSync makes sure every output is materialised inside the timing
    const data = outs.map((t) => t.dataSync());
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const cur = outs.map((t, i) => ({ shape: t.shape, dtype: t.dtype, data: Float32Array.from(data[i]) }));
    tf.dispose(outs);
    if (result === null) {
      result = cur;
    } else {
      identical = identical && cur.every((c, i) => Buffer.compare(asLeBytes(c.data), asLeBytes(result[i].data)) === 0);
    }
  }
  x.dispose();

  fs.mkdirSync(opts.outDir, { recursive: true });
  const meta = {
    model: opts.model,
    input: opts.input,
    input_name: inputName,
    input_shape: opts.shape,
    outputs: result.map((o, i) => ({ name: opts.outputs[i], file: `${i}.f32`, shape: o.shape, dtype: o.dtype })),
    backend: tf.getBackend(),
    versions: { node: process.version, 'tfjs-core': tf.version_core, 'tfjs-converter': tfconv.version_converter },
    load_ms: loadMs,
    wall_ms: times[0],
    repeat: opts.repeat,
  };
  if (opts.repeat > 1) {
    meta.times_ms = times;
    meta.median_ms = median(times);
    meta.repeat_identical = identical;
  }
  result.forEach((o, i) => fs.writeFileSync(path.join(opts.outDir, `${i}.f32`), asLeBytes(o.data)));
  // two-space JSON with number arrays (shapes, times) on one line
  const json = JSON.stringify(meta, null, 2).replace(/\[\s+([-\d.e,\s]+?)\s+\]/g, (_, g) => `[${g.split(/,\s*/).join(', ')}]`);
  fs.writeFileSync(path.join(opts.outDir, 'outputs.json'), json + '\n');
  const summary = meta.outputs.map((o) => `${o.name} [${o.shape}] ${o.dtype}`).join('; ');
  const timing = opts.repeat > 1 ? `median ${meta.median_ms.toFixed(1)} ms of ${opts.repeat}` : `${times[0].toFixed(1)} ms`;
  process.stdout.write(`tfjs_graph: ${summary}; ${timing} (load ${loadMs.toFixed(1)} ms) -> ${opts.outDir}\n`);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
