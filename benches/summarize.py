#!/usr/bin/env python3
"""Summarise benches/run.sh results (JSON lines): median and spread (min..max) over runs,
ratios to the baseline measured in the same run, and each target met or missed."""

import json
import statistics
import sys
from collections import defaultdict

# Benchmark 6's connectors (plain HTTP, TLS, TLS with client certificates), in this order.
TLS_LABELS = ("connector-plain", "connector-tls", "connector-mtls")


def spread(values, fmt="{:.0f}"):
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}..{fmt.format(max(values))})"


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    machines = [r for r in rows if r["bench"] == "machine"]
    if machines:
        m = machines[0]
        print(f"machine: {m['cores']} cores, {m['mem_gib']} GiB, {m['cpu']}; {m['date']}")
        print("load average (1/5/15 min) during the run:")
        for m in machines:
            print(f"  {m['when']:<16} {' '.join(m['loadavg'])}")

    soap = [r for r in rows if r["bench"] == "soap" and r["label"] not in TLS_LABELS]
    if soap:
        print("\n1/5. SOAP, closed loop (saturation) and open loop at 50 % of it")
        groups = defaultdict(list)
        for r in soap:
            groups[(r["label"], r["op"])].append(r)
        base = [r["saturation"]["rps"] for r in groups.get(("baseline", "attrs"), [])]
        base_med = statistics.median(base) if base else None
        print(f"  {'server/op':<26} {'rps':>22} {'p50 ms':>8} {'p99 ms':>8} {'p999 ms':>8}"
              f" {'ratio':>6} | open loop: {'rps':>7} {'p50':>6} {'p99':>6} {'p999':>6} {'p99 from schedule':>18}")
        for (label, op), rs in groups.items():
            sat = [r["saturation"] for r in rs]
            ol = [r.get("open_loop") for r in rs if r.get("open_loop")]
            ratio = ""
            if base_med:
                ratio = f"{statistics.median([s['rps'] for s in sat]) / base_med:.2f}"
            line = (f"  {label + '/' + op:<26} {spread([s['rps'] for s in sat]):>22}"
                    f" {spread([s['p50_ms'] for s in sat], '{:.2f}'):>8}"
                    f" {spread([s['p99_ms'] for s in sat], '{:.2f}'):>8}"
                    f" {spread([s['p999_ms'] for s in sat], '{:.2f}'):>8} {ratio:>6}")
            if ol:
                line += (f" | {statistics.median([o['rps'] for o in ol]):>17.0f}"
                         f" {statistics.median([o['p50_ms'] for o in ol]):>6.2f}"
                         f" {spread([o['p99_ms'] for o in ol], '{:.2f}'):>6}"
                         f" {statistics.median([o['p999_ms'] for o in ol]):>6.2f}"
                         f" {spread([o.get('p99_sched_ms') or 0 for o in ol], '{:.2f}'):>18}")
            cpu = [s["cpu_per_request"]["server_cpu_us"] for s in sat
                   if (s.get("cpu_per_request") or {}).get("server_cpu_us") is not None]
            if cpu:
                line += f" | server CPU {spread(cpu, '{:.1f}')} us/req"
            errors = sum(s["errors"] for s in sat)
            if errors:
                line += f"  errors {errors}"
            print(line)
        # Per-run ratios: connector rps / baseline rps of the same repetition.
        per_run = defaultdict(dict)
        counters = defaultdict(int)
        for r in soap:
            key = (r["label"], r["op"])
            per_run[counters[key]][key] = r["saturation"]["rps"]
            counters[key] += 1
        for key in groups:
            if key == ("baseline", "attrs"):
                continue
            ratios = [run[key] / run[("baseline", "attrs")]
                      for run in per_run.values() if key in run and ("baseline", "attrs") in run]
            if ratios:
                verdict = ""
                if key[0] == "connector":
                    verdict = "target >= 0.70: " + ("met" if statistics.median(ratios) >= 0.7 else "MISSED")
                print(f"  ratio {key[0]}/{key[1]} to baseline per run: "
                      f"{', '.join(f'{x:.2f}' for x in ratios)}  {verdict}")
                if key[0] == "connector":
                    p99 = [r["open_loop"]["p99_ms"] for r in groups[key] if r.get("open_loop")]
                    if p99:
                        print(f"  p99 at 50 % of saturation {key[1]}: median {statistics.median(p99):.2f} ms, "
                              f"target < 2 ms: {'met' if statistics.median(p99) < 2 else 'MISSED'}")

    for kind, title in (("events", "at saturation"), ("events_light", "at a light load")):
        events = [r for r in rows if r["bench"] == kind]
        if not events:
            continue
        print(f"\n2. Event pipeline {title} (sim control request sent -> phoneCallChanged received),"
              f" {events[0]['concurrency']} agents driven at once")
        by = defaultdict(list)
        for r in events:
            by[r["agents"]].append(r)
        for agents, rs in sorted(by.items()):
            p99 = statistics.median([r["p99_ms"] for r in rs])
            eps = statistics.median([r["events_per_s"] for r in rs])
            print(f"  {agents:>6} agents: {spread([r['events_per_s'] for r in rs]):>22} events/s,"
                  f" p50 {spread([r['p50_ms'] for r in rs], '{:.2f}')} ms,"
                  f" p99 {spread([r['p99_ms'] for r in rs], '{:.2f}')} ms,"
                  f" p999 {spread([r['p999_ms'] for r in rs], '{:.2f}')} ms,"
                  f" CPU/event connector {spread([(r.get('cpu_per_event') or {}).get('server_cpu_us') or 0 for r in rs], '{:.1f}')} us,"
                  f" load tool {spread([(r.get('cpu_per_event') or {}).get('loadgen_cpu_us') or 0 for r in rs], '{:.1f}')} us"
                  f"  [p99<5ms {'met' if p99 < 5 else 'MISSED'}, >=20k/s {'met' if eps >= 20000 else 'MISSED'}]")

    spool = [r for r in rows if r["bench"] in ("spool_events", "spool_events_light")]
    if spool:
        print("\n7. Event pipeline by spool, same run: redb (one connector) beside JetStream"
              " (the replicated spool of [cluster], three NATS nodes, replicas 3)")
        by = defaultdict(list)
        for r in spool:
            by[(r["bench"], r["agents"], r["spool"])].append(r)
        for (bench, agents, kind), rs in sorted(by.items()):
            load = "saturation" if bench == "spool_events" else "light load"
            print(f"  {load:<10} {agents:>6} agents {kind:<9}:"
                  f" {spread([r['events_per_s'] for r in rs]):>22} events/s,"
                  f" p50 {spread([r['p50_ms'] for r in rs], '{:.2f}')} ms,"
                  f" p99 {spread([r['p99_ms'] for r in rs], '{:.2f}')} ms")

    memory = [r for r in rows if r["bench"] == "memory"]
    if memory:
        print("\n3. Connector RSS after setup (agents x 6 ringing calls, one subscription each)")
        by = defaultdict(list)
        for r in memory:
            by[r["agents"]].append(r)
        for agents, rs in sorted(by.items()):
            mib = [r["rss_bytes"] / 2**20 for r in rs]
            per = [r["bytes_per_agent"] for r in rs if "bytes_per_agent" in r]
            setup = [r["setup_s"] for r in rs if "setup_s" in r]
            line = f"  {agents:>6} agents: RSS {spread(mib, '{:.1f}')} MiB"
            if per:
                line += f", {spread(per)} bytes/agent over the empty process"
            if setup:
                line += f", set up in {spread(setup, '{:.1f}')} s"
            if agents == 20000:
                line += f"  [< 300 MB {'met' if statistics.median(mib) * 2**20 < 300e6 else 'MISSED'}]"
            print(line)
        sizes = sorted(a for a in by if a > 0)
        if len(sizes) >= 2:
            med = {a: statistics.median([r["rss_bytes"] for r in by[a]]) for a in sizes}
            slopes = [(med[b] - med[a]) / (b - a) for a, b in zip(sizes, sizes[1:])]
            print("  marginal bytes/agent between sizes: "
                  + ", ".join(f"{a}->{b}: {s:.0f}" for (a, b), s in zip(zip(sizes, sizes[1:]), slopes)))

    for r in rows:
        if r["bench"] == "parse_alloc":
            print(f"\n4. parse_request {r['input']}: {r['allocations']:.1f} allocations, "
                  f"{r['bytes']} bytes allocated per request (body {r['body']} bytes)", end="")
        if r["bench"] == "parse_time":
            print(f"\n4. parse_request {r['input']}: {r['ns']:.0f} ns "
                  f"[{r['ns_low']:.0f} .. {r['ns_high']:.0f}]", end="")
    print()
    for r in rows:
        if r["bench"] == "tls":
            print(f"\n6. TLS: {r['status']}")
    tls(rows)


def per_run_ratios(rows, value):
    """{label: [value / plain's value, per repetition]}; the n-th row of each label is run n."""
    runs = defaultdict(dict)
    counters = defaultdict(int)
    for r in rows:
        runs[counters[r["label"]]][r["label"]] = value(r)
        counters[r["label"]] += 1
    return {label: [run[label] / run["connector-plain"] for run in runs.values()
                    if label in run and run.get("connector-plain")]
            for label in TLS_LABELS}


def tls(rows):
    soap = [r for r in rows if r["bench"] == "soap" and r["label"] in TLS_LABELS]
    connect = [r for r in rows if r["bench"] == "connect" and r["label"] in TLS_LABELS]
    if not soap and not connect:
        return
    print("\n6. TLS: getPhoneCallAttributes as benchmark 1, plain / TLS / TLS with client certificates")
    for r in soap + connect:
        if r.get("tls"):
            t = r["tls"]
            print(f"  negotiated: {t['version']} {t['suite']} {t.get('key_exchange', '')}")
            break
    if soap:
        ratios = per_run_ratios(soap, lambda r: r["saturation"]["rps"])
        print(f"  {'server':<16} {'rps':>22} {'p50 ms':>8} {'p99 ms':>8} {'p999 ms':>8}"
              f" {'CPU us/req: server':>18} {'load tool':>17} {'÷ plain per run':>18}"
              f" | open loop: {'rps':>7} {'p50':>6} {'p99':>18} {'p999':>6}")
        for label in TLS_LABELS:
            rs = [r for r in soap if r["label"] == label]
            if not rs:
                continue
            sat = [r["saturation"] for r in rs]
            cpu = [s["cpu_per_request"]["server_cpu_us"] for s in sat
                   if s.get("cpu_per_request", {}).get("server_cpu_us") is not None]
            lg = [s["cpu_per_request"]["loadgen_cpu_us"] for s in sat if s.get("cpu_per_request")]
            ol = [r["open_loop"] for r in rs if r.get("open_loop")]
            line = (f"  {label:<16} {spread([s['rps'] for s in sat]):>22}"
                    f" {spread([s['p50_ms'] for s in sat], '{:.2f}'):>8}"
                    f" {spread([s['p99_ms'] for s in sat], '{:.2f}'):>8}"
                    f" {spread([s['p999_ms'] for s in sat], '{:.2f}'):>8}"
                    f" {spread(cpu, '{:.1f}'):>18} {spread(lg, '{:.1f}'):>17}"
                    f" {', '.join(f'{x:.2f}' for x in ratios[label]):>18}")
            if ol:
                line += (f" | {statistics.median([o['rps'] for o in ol]):>17.0f}"
                         f" {statistics.median([o['p50_ms'] for o in ol]):>6.2f}"
                         f" {spread([o['p99_ms'] for o in ol], '{:.2f}'):>18}"
                         f" {statistics.median([o['p999_ms'] for o in ol]):>6.2f}")
            errors = sum(s["errors"] for s in sat) + sum(o["errors"] for o in ol)
            if errors:
                line += f"  errors {errors}"
            print(line)
        for label in TLS_LABELS[1:]:
            if ratios[label]:
                med = statistics.median(ratios[label])
                print(f"  {label} ÷ plain, saturation req/s: median {med:.2f} ({100 * (med - 1):+.0f} %)")
    if connect:
        ratios = per_run_ratios(connect, lambda r: r["conns_per_s"])
        c = connect[0]
        print(f"  new connections ({c['count']} per run, {c['concurrency']} at a time;"
              " connect, handshake, one request, close):")
        for label in TLS_LABELS:
            rs = [r for r in connect if r["label"] == label]
            if not rs:
                continue
            cpu = [r["cpu_per_connection"]["server_cpu_us"] for r in rs
                   if r["cpu_per_connection"].get("server_cpu_us") is not None]
            lg = [r["cpu_per_connection"]["loadgen_cpu_us"] for r in rs]
            print(f"  {label:<16} {spread([r['conns_per_s'] for r in rs]):>22} conns/s,"
                  f" p50 {spread([r['p50_ms'] for r in rs], '{:.2f}')} ms,"
                  f" p99 {spread([r['p99_ms'] for r in rs], '{:.2f}')} ms,"
                  f" CPU us/conn server {spread(cpu)}, load tool {spread(lg)};"
                  f" ÷ plain per run {', '.join(f'{x:.2f}' for x in ratios[label])}")


if __name__ == "__main__":
    main(sys.argv[1])
