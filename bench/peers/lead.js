// Lead scoring through a peer rule engine, on the very events bench/engine_bench.cpp makes.
//
//   node lead.js ENGINE [events=1000000] [leads=100000]
//   ENGINE: json-rules-engine | zen-decision | zen-decision-concurrent | zen-expression | plain-js
//
// Events: the same SplitMix64 sequence as bench/engine_bench.cpp (seed 42; t starts at
// 1785000000000 and grows by r % 15000 ms; lead = (r >> 20) % leads; kind = (r >> 40) % 10:
// 0-7 page_view with page = pages[(r >> 44) % 5], 8 guide_download, 9 webinar_signup),
// computed with BigInt so every bit matches.
//
// Semantics (gavel's, rules/engine_impl.hpp Decay / OnEntityEvent): the peer engine decides
// the points of each event (page "/" +2, page like "/pricing*" +10, guide_download +15,
// webinar_signup +20, else 0). The per-lead state is plain JavaScript around it (neither peer
// keeps state): before each event of a lead, inactivity decay is applied lazily, -20 at
// last_activity + k * 30 days for every full period since the last activity, floor 0 (it stops
// at the floor); then the points are added (floor 0), the activity clock restarts, and a
// crossing is counted when before <= 50 and after > 50. Decay never counts as a crossing
// above. The count must equal engine_bench's "decisions: N" on the same events and leads.
//
// Throughput is per CPU-second of the whole process (all threads: zen's evaluate() runs on
// its own thread pool), so that a busy shared machine does not change it much.
// Prints `count lead.decisions N` and `rate lead.events_per_s X` lines for run.sh. Event
// generation and fact objects are made before the clock starts.
'use strict';

const ENGINE = process.argv[2] || 'plain-js';
const N_EVENTS = Number(process.argv[3] || 1000000);
const N_LEADS = Number(process.argv[4] || 100000);

const PAGES = ['/', '/pricing', '/pricing/teams', '/blog/x', '/docs/y'];
const TYPES = ['page_view', 'guide_download', 'webinar_signup'];

function generate(nEvents, nLeads) {
  const M = (1n << 64n) - 1n;
  let s = 42n;
  const next = () => {
    s = (s + 0x9e3779b97f4a7c15n) & M;
    let z = s;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
    return z ^ (z >> 31n);
  };
  const time = new Float64Array(nEvents);
  const lead = new Int32Array(nEvents);
  const facts = new Array(nEvents);
  const leads = BigInt(nLeads);
  let t = 1785000000000;
  for (let i = 0; i < nEvents; ++i) {
    const r = next();
    t += Number(r % 15000n);
    time[i] = t;
    lead[i] = Number((r >> 20n) % leads);
    const kind = Number((r >> 40n) % 10n);
    if (kind < 8) facts[i] = { type: 'page_view', page: PAGES[Number((r >> 44n) % 5n)] };
    else if (kind === 8) facts[i] = { type: 'guide_download', page: '' };
    else facts[i] = { type: 'webinar_signup', page: '' };
  }
  return { time, lead, facts };
}

// ---------------------------------------------------------------- the peers' rules

async function makeScorer(engine) {
  if (engine === 'plain-js') {
    // No engine: the rules written by hand in JavaScript (the floor of what JS can do).
    return (f) => (f.type === 'page_view' ? (f.page === '/' ? 2 : f.page.startsWith('/pricing') ? 10 : 0)
                   : f.type === 'guide_download' ? 15 : f.type === 'webinar_signup' ? 20 : 0);
  }
  if (engine === 'json-rules-engine') {
    const { Engine } = require('json-rules-engine');
    const e = new Engine([], { allowUndefinedFacts: true });
    e.addOperator('startsWith', (a, b) => typeof a === 'string' && a.startsWith(b));
    const rule = (name, conditions, points) => e.addRule({ name, conditions: { all: conditions },
                                                           event: { type: 'points', params: { points } } });
    rule('home', [{ fact: 'type', operator: 'equal', value: 'page_view' },
                  { fact: 'page', operator: 'equal', value: '/' }], 2);
    rule('pricing', [{ fact: 'type', operator: 'equal', value: 'page_view' },
                     { fact: 'page', operator: 'startsWith', value: '/pricing' }], 10);
    rule('guide', [{ fact: 'type', operator: 'equal', value: 'guide_download' }], 15);
    rule('webinar', [{ fact: 'type', operator: 'equal', value: 'webinar_signup' }], 20);
    return async (f) => {
      const { events } = await e.run(f);
      let p = 0;
      for (const ev of events) p += ev.params.points;
      return p;
    };
  }
  if (engine === 'zen-decision' || engine === 'zen-decision-concurrent') {
    // A JDM decision graph: input -> decision table (hit policy first) -> output.
    const { ZenEngine } = require('@gorules/zen-engine');
    const content = {
      nodes: [
        { id: 'in', type: 'inputNode', name: 'event', position: { x: 0, y: 0 } },
        {
          id: 'points', type: 'decisionTableNode', name: 'points', position: { x: 200, y: 0 },
          content: {
            hitPolicy: 'first',
            inputs: [{ id: 'type', name: 'type', field: 'type' }, { id: 'page', name: 'page', field: 'page' }],
            outputs: [{ id: 'pts', name: 'points', field: 'points' }],
            rules: [
              { _id: 'home', type: '"page_view"', page: '"/"', pts: '2' },
              { _id: 'pricing', type: '"page_view"', page: 'startsWith($, "/pricing")', pts: '10' },
              { _id: 'guide', type: '"guide_download"', page: '', pts: '15' },
              { _id: 'webinar', type: '"webinar_signup"', page: '', pts: '20' },
              { _id: 'other', type: '', page: '', pts: '0' },
            ],
          },
        },
        { id: 'out', type: 'outputNode', name: 'out', position: { x: 400, y: 0 } },
      ],
      edges: [
        { id: 'e1', sourceId: 'in', targetId: 'points', type: 'edge' },
        { id: 'e2', sourceId: 'points', targetId: 'out', type: 'edge' },
      ],
    };
    const zen = new ZenEngine();
    const decision = zen.createDecision(content);
    return async (f) => (await decision.evaluate(f)).result.points;
  }
  if (engine === 'zen-expression') {
    // One ZEN expression per event, evaluated synchronously (the fastest zen API from Node).
    const { evaluateExpressionSync } = require('@gorules/zen-engine');
    const expr = 'type == "page_view" ? (page == "/" ? 2 : (startsWith(page, "/pricing") ? 10 : 0))'
               + ' : (type == "guide_download" ? 15 : (type == "webinar_signup" ? 20 : 0))';
    return (f) => evaluateExpressionSync(expr, f);
  }
  throw new Error(`unknown engine ${engine}`);
}

// ---------------------------------------------------------------- gavel's score semantics

const THRESHOLD = 50;
const DECAY = 20;
const PERIOD = 30 * 86400 * 1000;
const FLOOR = 0;

async function run() {
  const { time, lead, facts } = generate(N_EVENTS, N_LEADS);
  const score = await makeScorer(ENGINE);
  const isAsync = ENGINE === 'json-rules-engine' || ENGINE.startsWith('zen-decision');
  // Sanity: the peer gives the hand-written points on every kind of event.
  const plain = await makeScorer('plain-js');
  for (const f of [{ type: 'page_view', page: '/' }, { type: 'page_view', page: '/pricing' },
                   { type: 'page_view', page: '/pricing/teams' }, { type: 'page_view', page: '/blog/x' },
                   { type: 'guide_download', page: '' }, { type: 'webinar_signup', page: '' }]) {
    const got = await score(f);
    if (got !== plain(f)) throw new Error(`${ENGINE} gives ${got} points for ${JSON.stringify(f)}, not ${plain(f)}`);
  }

  const value = new Float64Array(N_LEADS);
  const lastActivity = new Float64Array(N_LEADS).fill(-1);
  const steps = new Float64Array(N_LEADS);
  const asOf = new Float64Array(N_LEADS);
  const lastEvent = new Float64Array(N_LEADS).fill(-1);
  let decisions = 0;

  const apply = (i, points) => {
    const l = lead[i];
    const at = Math.max(time[i], lastEvent[l]);  // late events apply as of the latest time seen
    // Lazy inactivity decay up to `at`.
    if (lastActivity[l] >= 0 && at > asOf[l]) {
      const due = Math.floor((at - lastActivity[l]) / PERIOD);
      while (steps[l] < due) {
        steps[l] += 1;
        value[l] = Math.max(FLOOR, value[l] - DECAY);
        if (value[l] <= FLOOR) { steps[l] = due; break; }
      }
      asOf[l] = at;
    }
    lastEvent[l] = at;
    const before = value[l];
    lastActivity[l] = at;
    steps[l] = 0;
    asOf[l] = at;
    if (points !== 0) {
      value[l] = Math.max(FLOOR, value[l] + points);
      if (before <= THRESHOLD && value[l] > THRESHOLD) ++decisions;
    }
  };

  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  if (ENGINE === 'zen-decision-concurrent') {
    // The points depend on the event alone, so zen may score a chunk of events at once (its
    // evaluate() runs off the JS thread); the state is then applied in order.
    const CHUNK = 1024;
    for (let i = 0; i < N_EVENTS; i += CHUNK) {
      const n = Math.min(CHUNK, N_EVENTS - i);
      const pts = await Promise.all(Array.from({ length: n }, (_, k) => score(facts[i + k])));
      for (let k = 0; k < n; ++k) apply(i + k, pts[k]);
    }
  } else if (isAsync) {
    for (let i = 0; i < N_EVENTS; ++i) apply(i, await score(facts[i]));
  } else {
    for (let i = 0; i < N_EVENTS; ++i) apply(i, score(facts[i]));
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(c0);
  const secs = (cpu.user + cpu.system) / 1e6;  // CPU time of the process, all threads
  console.log(`${ENGINE}: lead scoring ${N_EVENTS} events over ${N_LEADS} leads in ${secs.toFixed(3)} CPU s (${wall.toFixed(3)} s wall) = `
              + `${Math.round(N_EVENTS / secs)} events/s; decisions: ${decisions}`);
  console.log(`count lead.decisions ${decisions}`);
  console.log(`rate lead.events_per_s ${Math.round(N_EVENTS / secs)}`);
}

run().catch((e) => { console.error(e); process.exit(1); });
