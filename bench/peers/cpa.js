// CPA conditions through a peer rule engine, on the very rows bench/cpa_bench.cpp makes.
//
//   node cpa.js ENGINE [adsets=100000] [days=10]
//   ENGINE: json-rules-engine | zen-decision | zen-expression | plain-js
//
// Rows (see the head of bench/cpa_bench.cpp; 32-bit arithmetic with Math.imul, so every
// value matches): Mix = lowbias32, H(n, k) = Mix((n*4 + k + 0x9e3779b9) mod 2^32); ad set i,
// day d, n = i*64 + d, m = i*64 + 63:
//   target_cpa = 25 + H(m,0) % 30; spend = 20 + (H(n,0) % 2000) * 0.25;
//   clicks = 5 + H(n,1) % 200; conversions = H(m,3) % 20 == 0 ? 0 : H(n,2) % 16.
//
// Two rules, as gavel's cpa_bench compiles them (a ratio over zero conversions has no value,
// and a comparison with no value is false):
//   cpa_plain: spend / conversions > target_cpa      cpa_const: spend / conversions > 40
// Measured: the condition over every daily row (rows/s, like cpa_bench's "cond rows/s"), and
// the ad sets that fire once spend and conversions are summed over the days (the sums are
// plain JavaScript; the peer evaluates the condition per ad set).
//
// Throughput is per CPU-second of the whole process (all threads: zen's evaluate() runs on
// its own thread pool), so that a busy shared machine does not change it much.
// Prints `count RULE.rows N`, `count RULE.fired N` and `rate RULE.rows_per_s X` for run.sh.
'use strict';

const ENGINE = process.argv[2] || 'plain-js';
const N_ADSETS = Number(process.argv[3] || 100000);
const N_DAYS = Number(process.argv[4] || 10);

function mix(x) {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}
const H = (n, k) => mix((n * 4 + k + 0x9e3779b9) >>> 0);

function generate(adsets, days) {
  const rows = [];
  for (let i = 0; i < adsets; ++i) {
    const m = i * 64 + 63;
    const target = 25 + (H(m, 0) % 30);
    const zero = H(m, 3) % 20 === 0;
    for (let d = 0; d < days; ++d) {
      const n = i * 64 + d;
      rows.push({ adset: i, spend: 20 + (H(n, 0) % 2000) * 0.25, clicks: 5 + (H(n, 1) % 200),
                  conversions: zero ? 0 : H(n, 2) % 16, target_cpa: target });
    }
  }
  return rows;
}

const RULES = [
  { name: 'cpa_plain', target: null },  // the ad set's target_cpa
  { name: 'cpa_const', target: 40 },
];

async function makeCondition(engine, rule) {
  const targetExpr = rule.target === null ? 'target_cpa' : String(rule.target);
  if (engine === 'plain-js') {
    return rule.target === null ? (f) => f.conversions > 0 && f.spend / f.conversions > f.target_cpa
                                : (f) => f.conversions > 0 && f.spend / f.conversions > rule.target;
  }
  if (engine === 'json-rules-engine') {
    const { Engine } = require('json-rules-engine');
    const e = new Engine([], { allowUndefinedFacts: true });
    e.addFact('cpa', async (params, almanac) => (await almanac.factValue('spend')) / (await almanac.factValue('conversions')));
    e.addRule({
      name: rule.name,
      conditions: { all: [
        { fact: 'conversions', operator: 'greaterThan', value: 0 },
        { fact: 'cpa', operator: 'greaterThan', value: rule.target === null ? { fact: 'target_cpa' } : rule.target },
      ] },
      event: { type: 'pause' },
    });
    return async (f) => (await e.run(f)).events.length > 0;
  }
  if (engine === 'zen-decision') {
    const { ZenEngine } = require('@gorules/zen-engine');
    const content = {
      nodes: [
        { id: 'in', type: 'inputNode', name: 'row', position: { x: 0, y: 0 } },
        { id: 'cond', type: 'expressionNode', name: rule.name, position: { x: 200, y: 0 },
          content: { expressions: [{ id: 'x', key: 'pause', value: `conversions > 0 and spend / conversions > ${targetExpr}` }] } },
        { id: 'out', type: 'outputNode', name: 'out', position: { x: 400, y: 0 } },
      ],
      edges: [
        { id: 'e1', sourceId: 'in', targetId: 'cond', type: 'edge' },
        { id: 'e2', sourceId: 'cond', targetId: 'out', type: 'edge' },
      ],
    };
    const decision = new ZenEngine().createDecision(content);
    return async (f) => (await decision.evaluate(f)).result.pause === true;
  }
  if (engine === 'zen-expression') {
    const { evaluateExpressionSync } = require('@gorules/zen-engine');
    const expr = `conversions > 0 and spend / conversions > ${targetExpr}`;
    return (f) => evaluateExpressionSync(expr, f) === true;
  }
  throw new Error(`unknown engine ${engine}`);
}

async function run() {
  const rows = generate(N_ADSETS, N_DAYS);
  // Per ad set sums (plain JavaScript: the warehouse's job in gavel).
  const adsets = [];
  for (let i = 0; i < N_ADSETS; ++i) {
    let spend = 0, conversions = 0, clicks = 0;
    for (let d = 0; d < N_DAYS; ++d) {
      const r = rows[i * N_DAYS + d];
      spend += r.spend;
      conversions += r.conversions;
      clicks += r.clicks;
    }
    adsets.push({ adset: i, spend, clicks, conversions, target_cpa: rows[i * N_DAYS].target_cpa });
  }
  const isAsync = ENGINE === 'json-rules-engine' || ENGINE === 'zen-decision';
  for (const rule of RULES) {
    const cond = await makeCondition(ENGINE, rule);
    const plain = await makeCondition('plain-js', rule);
    let hits = 0;
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    if (isAsync) {
      for (const r of rows) hits += (await cond(r)) ? 1 : 0;
    } else {
      for (const r of rows) hits += cond(r) ? 1 : 0;
    }
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(c0);
    const secs = (cpu.user + cpu.system) / 1e6;  // CPU time of the process, all threads
    let fired = 0;
    for (const a of adsets) {
      const got = isAsync ? await cond(a) : cond(a);
      if (got !== plain(a)) throw new Error(`${ENGINE} disagrees with plain JS on ${JSON.stringify(a)}`);
      fired += got ? 1 : 0;
    }
    console.log(`${ENGINE}: ${rule.name} over ${rows.length} rows in ${secs.toFixed(3)} CPU s (${wall.toFixed(3)} s wall) = `
                + `${Math.round(rows.length / secs)} rows/s; rows hit ${hits}; ad sets fired ${fired} of ${N_ADSETS}`);
    console.log(`count ${rule.name}.rows ${hits}`);
    console.log(`count ${rule.name}.fired ${fired}`);
    console.log(`rate ${rule.name}.rows_per_s ${Math.round(rows.length / secs)}`);
  }
}

run().catch((e) => { console.error(e); process.exit(1); });
