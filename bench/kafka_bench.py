"""Kafka worker speed against a plain aiokafka baseline, measured in the same run, on the same
broker and the same messages.

    python bench/kafka_bench.py [--events 200000] [--partitions 4]

Starts a private Kafka broker (tests/kafka_support.ensure_broker) unless REPLAYLENS_TEST_BOOTSTRAP
names one. Loopback only. Prints:

1. baseline: a plain aiokafka consume -> produce loop (consumer group, getmany batches, every
   message produced to a second topic, acks=all, offsets committed after each batch's acks);
2. one `replaylens worker` process over the same messages, in an isolated pipeline (own topics and
   consumer group), the events produced before it starts; its rate is read off the consumer
   group's committed offsets, and its ratio to the baseline;
3. a summarize-role worker over the closed sessions (2) wrote; 4. both roles in one process;
5. close -> summary latency under live traffic at half (4)'s rate: Kafka record timestamp of each
   closed session against that of its summary (same window_id), p50/p99/max;
6. state written under a real-time trickle (300 open sessions, events seconds apart), per input byte;
and the machine, Python and Kafka versions, and the command line.
"""
from __future__ import annotations

import argparse
import asyncio
import heapq
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402

from replaylens.streams.simulator import simulate  # noqa: E402
from tests import kafka_support  # noqa: E402
from tests.worker_process import WorkerProcess, create_topics, pipeline_env, produce, topic  # noqa: E402

# The simulated sessions keep their real spacing (about 4 h of event time per 200k events) and are
# shifted to end just before now, as a backlog would be. Event time then races ahead of wall time
# while the worker reads, so sessions close (all end with session-end) once the partition's event
# time passes their end + grace, nearly all during the run. Compressing the hours into seconds (as
# tests/integration/test_sessionize_kafka.py does for a few thousand events) would make a worker that reads
# slower than the compressed rate fall behind its wall-clock-advanced watermark and dead-letter
# events as late, which measures the late path rather than the pipeline.
GRACE_MS = 5_000
TARGET_EVENTS_PER_S = 40_000
TARGET_RATIO = 0.5
TARGET_LATENCY_MS = 1_000
COMMIT_POLL_S = 0.05
TICK_S = 0.5  # REPLAYLENS_TICK_INTERVAL_S of the workers
TRICKLE_GAP_S = (2.0, 6.0)  # seconds between two events of one session in the trickle phase


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): figures per core-second are
    steadier than wall-clock rates on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Rate:
    events: int
    seconds: float
    cpu_s: float = float("nan")

    @property
    def per_cpu_s(self) -> float:
        return self.events / self.cpu_s if self.cpu_s > 0 else float("nan")

    @property
    def per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


# -- machine ---------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_lines(bootstrap: str, external: bool) -> list[str]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    kafka = (f"external broker at {bootstrap} (version not probed)" if external
             else f"Kafka {kafka_support.KAFKA_VERSION} (scripts/kafka.sh, private, {bootstrap})")
    return [
        f"command   {' '.join([Path(sys.executable).name] + sys.argv)}",
        f"machine   nproc {usable} (os.cpu_count {os.cpu_count()}), {cpu_model()}",
        f"software  Python {platform.python_version()}, {kafka}, {platform.platform()}",
    ]


# -- messages --------------------------------------------------------------------------------------
def recent_events(target_events: int, seed: int) -> tuple[list[tuple[bytes, bytes]], int, float]:
    """Whole simulated sessions (about target_events events), keyed by session id, shifted in
    time so the last event is a second before now. Also returns the event-time span in hours."""
    sessions = max(1, round(target_events / 19.7))  # the simulator's mean session length
    events = list(simulate(sessions, seed=seed, session_end_rate=1.0))
    first, last = min(e["timestamp"] for e in events), max(e["timestamp"] for e in events)
    shift = int(time.time() * 1000) - 1_000 - last
    for e in events:
        e["timestamp"] += shift
    pairs = [(e["session_id"].encode(), orjson.dumps(e)) for e in events]
    return pairs, sessions, (last - first) / 3_600_000


# -- offsets ---------------------------------------------------------------------------------------
async def end_offsets(bootstrap: str, topic_name: str, partitions: int) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        return await consumer.end_offsets([TopicPartition(topic_name, p) for p in range(partitions)])
    finally:
        await consumer.stop()


async def committed_total(admin: AIOKafkaAdminClient, group: str, tps: list[TopicPartition]) -> int:
    offsets = await admin.list_consumer_group_offsets(group, partitions=tps)
    return sum(max(meta.offset, 0) for meta in offsets.values())


# -- 1. baseline -----------------------------------------------------------------------------------
async def run_baseline(bootstrap: str, source: str, sink: str, expected: int, batch: int,
                       timeout_s: float, producer: Optional[AIOKafkaProducer] = None,
                       each: Optional[Callable[[bytes], Any]] = None) -> Rate:
    """consume -> (`each` value) -> produce -> commit, timed from partition assignment to the last
    batch's commit; a plain acks=all producer unless one is given."""
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=f"bench-baseline-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=batch)
    producer = producer or AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise TimeoutError("baseline consumer got no partitions assigned")
            await asyncio.sleep(0.01)
        done = 0
        began = time.perf_counter()
        cpu_began = time.process_time()
        while done < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"baseline moved only {done} of {expected} messages in {timeout_s}s")
            batches = await consumer.getmany(timeout_ms=500, max_records=batch)
            acks = []
            for records in batches.values():
                for r in records:
                    if each is not None:
                        each(r.value)
                    acks.append(await producer.send(sink, r.value, key=r.key))
            if acks:
                await asyncio.gather(*acks)
                await consumer.commit()
                done += len(acks)
        return Rate(done, time.perf_counter() - began, time.process_time() - cpu_began)
    finally:
        await consumer.stop()
        await producer.stop()


# -- 2. worker -------------------------------------------------------------------------------------
@dataclass
class WorkerRun:
    spawned_at: float
    first_commit_at: float
    first_committed: int
    done_at: float
    total: int
    commits: list[tuple[float, int]]  # (time, committed events) at every observed change
    cpu: list[float]  # the worker's CPU seconds at each of those commits

    @property
    def steady(self) -> Rate:
        """From the first observed commit to the commit that reached the end offsets: process
        start-up and group join are excluded; the last commit interval (1 s) may include idle."""
        return Rate(self.total - self.first_committed, self.done_at - self.first_commit_at,
                    self.cpu[-1] - self.cpu[0])

    @property
    def from_spawn(self) -> Rate:
        return Rate(self.total, self.done_at - self.spawned_at)

    @property
    def mid_slope(self) -> Optional[Rate]:
        """Between the first and the last commit that were neither empty nor complete: no idle
        tail at all; None when fewer than two such commits were seen."""
        mid = [(t, c, cpu) for (t, c), cpu in zip(self.commits, self.cpu) if 0 < c < self.total]
        if len(mid) < 2:
            return None
        return Rate(mid[-1][1] - mid[0][1], mid[-1][0] - mid[0][0], mid[-1][2] - mid[0][2])


async def run_worker(env: dict[str, str], bootstrap: str, partitions: int, worker: WorkerProcess,
                     timeout_s: float, role: str = "sessionize") -> WorkerRun:
    """Start the worker and poll the committed offsets of its `role` loop's consumer group until
    they reach the end offsets of its input topic. The worker is left running."""
    source = topic(env, "events" if role == "sessionize" else "closed_sessions")
    ends = await end_offsets(bootstrap, source, partitions)
    total = sum(ends.values())
    tps = list(ends)
    group = f"{env['REPLAYLENS_APP_ID']}-{role}"  # the loop's own consumer group
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        spawned = time.perf_counter()
        worker.start()
        deadline = time.monotonic() + timeout_s
        commits: list[tuple[float, int]] = []
        cpu: list[float] = []
        committed = 0
        while committed < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker committed {committed} of {total} events in {timeout_s}s;\n{worker.tail()}")
            worker.assert_alive()
            await asyncio.sleep(COMMIT_POLL_S)
            now_committed = await committed_total(admin, group, tps)
            if now_committed != committed:
                commits.append((time.perf_counter(), now_committed))
                cpu.append(cpu_seconds(worker.proc.pid))
                committed = now_committed
        first_at, first = commits[0]
        return WorkerRun(spawned, first_at, first, commits[-1][0], total, commits, cpu)
    finally:
        await admin.close()


# -- 3. close -> summary latency -------------------------------------------------------------------
async def first_timestamps(bootstrap: str, topic_name: str, partitions: int) -> dict[str, int]:
    """window_id -> the earliest Kafka record timestamp of it on the topic (read to its end)."""
    tps = [TopicPartition(topic_name, p) for p in range(partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    out: dict[str, int] = {}
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for r in records:
                    window = orjson.loads(r.value)["window_id"]
                    if window not in out or r.timestamp < out[window]:
                        out[window] = r.timestamp
    finally:
        await consumer.stop()
    return out


async def wait_for_summaries(bootstrap: str, env: dict[str, str], partitions: int, sessions: int,
                             worker: WorkerProcess, timeout_s: float) -> tuple[dict[str, int], dict[str, int]]:
    """Closed-session and summary timestamps once every session has a summary (or the timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        summaries = await first_timestamps(bootstrap, topic(env, "summaries"), partitions)
        if len(summaries) >= sessions or time.monotonic() > deadline:
            break
        worker.assert_alive()
        await asyncio.sleep(1.0)
    closed = await first_timestamps(bootstrap, topic(env, "closed_sessions"), partitions)
    return closed, summaries


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[index])


async def count_records(bootstrap: str, topic_name: str, partitions: int) -> int:
    return sum((await end_offsets(bootstrap, topic_name, partitions)).values())


async def topic_bytes(bootstrap: str, topic_name: str, partitions: int) -> int:
    """Sum of key and value sizes of every record on the topic (uncompressed)."""
    tps = [TopicPartition(topic_name, p) for p in range(partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    total = 0
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500, max_records=10000)).values():
                total += sum(len(r.value or b"") + len(r.key or b"") for r in records)
    finally:
        await consumer.stop()
    return total


def isolated_env(bootstrap: str, workdir: Path, args: argparse.Namespace, roles: str) -> dict[str, str]:
    workdir.mkdir(parents=True, exist_ok=True)
    return pipeline_env(bootstrap, workdir, prefix=f"bench{uuid.uuid4().hex[:6]}",
                        REPLAYLENS_TOPIC_PARTITIONS=args.partitions, REPLAYLENS_SESSION_GRACE_MS=args.grace_ms,
                        REPLAYLENS_TICK_INTERVAL_S=TICK_S, REPLAYLENS_WORKER_ROLES=roles,
                        REPLAYLENS_BATCH_SIZE=args.batch)


async def paced(bootstrap: str, topic_name: str, events: list[dict], rate: float) -> None:
    """Send events at `rate` per second, each stamped with its send time (live traffic)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    await producer.start()
    try:
        began = time.monotonic()
        futs = []
        for i, e in enumerate(events):
            due = began + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            e = dict(e, timestamp=int(time.time() * 1000))
            futs.append(await producer.send(topic_name, orjson.dumps(e), key=e["session_id"].encode()))
        await asyncio.gather(*futs)
    finally:
        await producer.stop()


async def bench(args: argparse.Namespace) -> None:
    external = bool(os.environ.get("REPLAYLENS_TEST_BOOTSTRAP", "").strip())
    bootstrap = kafka_support.ensure_broker()
    for line in machine_lines(bootstrap, external):
        print(line)
    if args.trickle_only:
        trickled: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="replaylens-kafka-bench-") as tmp:
            await trickle_phase(bootstrap, Path(tmp), args, trickled)
        print("RESULT " + " ".join(f"{k}={v:.3g}" for k, v in trickled.items()))
        return
    messages, sessions, hours = recent_events(args.events, args.seed)
    n = len(messages)
    input_bytes = sum(len(k) + len(v) for k, v in messages)
    print(f"messages  {n:,} simulated events of {sessions:,} sessions (all end with session-end), "
          f"{hours:.1f} h of event time ending 1 s before now, {args.partitions} partitions, keyed by "
          f"session id, {input_bytes / n:.0f} bytes per event; batch {args.batch}")
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="replaylens-kafka-bench-") as tmp:
        work = Path(tmp)
        env = isolated_env(bootstrap, work / "sessionize", args, "sessionize")
        await create_topics(env)
        sink = f"{env['REPLAYLENS_APP_ID']}-baseline-out"
        await kafka_support.create_topics(bootstrap, [sink], partitions=args.partitions)
        await produce(bootstrap, topic(env, "events"), messages)

        # 1. Baseline: a plain aiokafka consume -> produce -> commit loop on the same messages.
        base = await run_baseline(bootstrap, topic(env, "events"), sink, n, args.batch, args.timeout)
        print(f"\n1. baseline   aiokafka consume->produce->commit  {base.per_s:>9,.0f} events/s  "
              f"({n:,} in {base.seconds:.2f} s, getmany max {args.batch}, acks=all)")

        # 2. A sessionizing worker (role sessionize) over the same backlog.
        worker = WorkerProcess(env, work / "sessionize.log")
        try:
            run = await run_worker(env, bootstrap, args.partitions, worker, args.timeout)
        finally:
            worker.stop()
        kafka = run.mid_slope or run.steady
        results.update(kafka_eps=kafka.per_s, kafka_ratio=kafka.per_s / base.per_s,
                       kafka_cpu_ratio=kafka.per_cpu_s / base.per_cpu_s)
        state = await topic_bytes(bootstrap, env["REPLAYLENS_APP_ID"] + "-open-sessions", args.partitions)
        closed_bytes = await topic_bytes(bootstrap, topic(env, "closed_sessions"), args.partitions)
        print(f"2. sessionize worker (role sessionize)        {kafka.per_s:>9,.0f} events/s  ratio "
              f"{kafka.per_s / base.per_s:.2f} (targets >= {TARGET_RATIO} and >= {TARGET_EVENTS_PER_S:,}/s); "
              f"first commit {run.first_commit_at - run.spawned_at:.1f} s after spawn")
        print(f"             per CPU-second: worker {kafka.per_cpu_s:,.0f} events, baseline {base.per_cpu_s:,.0f} "
              f"events: ratio {kafka.per_cpu_s / base.per_cpu_s:.2f} (steadier than wall time on a shared machine)")
        print(f"             bytes written: state {state / input_bytes:.2f}x the input, closed sessions "
              f"{closed_bytes / input_bytes:.2f}x (backlog: each batch rewrites the sessions it touched)")

        # 3. A summarizing worker (role summarize) over the closed sessions step 2 wrote.
        worker = WorkerProcess(dict(env, REPLAYLENS_WORKER_ROLES="summarize"), work / "summarize.log")
        try:
            srun = await run_worker(env, bootstrap, args.partitions, worker, args.timeout, role="summarize")
        finally:
            worker.stop()
        srate = srun.mid_slope or srun.steady
        sps = srate.per_s
        results["summarize_sps"] = sps
        results["summarize_per_cpu_s"] = srate.per_cpu_s
        print(f"3. summarize worker (role summarize)          {sps:>9,.0f} sessions/s (target >= 2,000) "
              f"over {srun.total:,} closed sessions; {srate.per_cpu_s:,.0f} per CPU-second")

        # 4. The whole pipeline in one process (both roles), fresh topics, same messages.
        penv = isolated_env(bootstrap, work / "pipeline", args, "sessionize,summarize")
        await create_topics(penv)
        await produce(bootstrap, topic(penv, "events"), messages)
        worker = WorkerProcess(penv, work / "pipeline.log")
        try:
            prun = await run_worker(penv, bootstrap, args.partitions, worker, args.timeout)
        finally:
            worker.stop()
        pipe = (prun.mid_slope or prun.steady).per_s
        results["pipeline_ratio"] = pipe / base.per_s
        pcpu = (prun.mid_slope or prun.steady).per_cpu_s
        results["pipeline_cpu_ratio"] = pcpu / base.per_cpu_s
        print(f"4. pipeline worker (both roles, 1 process)    {pipe:>9,.0f} events/s  ratio {pipe / base.per_s:.2f} "
              f"(target >= 0.25); per CPU-second {pcpu:,.0f} events, ratio {pcpu / base.per_cpu_s:.2f}")

        # 5. Close -> summary latency under live traffic at half the pipeline's sustained rate.
        lenv = isolated_env(bootstrap, work / "latency", args, "sessionize,summarize")
        await create_topics(lenv)
        worker = WorkerProcess(lenv, work / "latency.log").start()
        try:
            await asyncio.sleep(args.join_s)  # joined and idle before traffic starts
            rate = pipe * args.load
            live = [orjson.loads(v) for _k, v in messages[: int(rate * args.live_s)]]
            live.sort(key=lambda e: e["timestamp"])
            await paced(bootstrap, topic(lenv, "events"), live, rate)
            live_sessions = len({e["session_id"] for e in live if e["type"] == "session-end"})
            closed, summaries = await wait_for_summaries(bootstrap, lenv, args.partitions, live_sessions, worker,
                                                         timeout_s=args.grace_ms / 1000 + 30)
        finally:
            worker.stop()
        live_bytes = sum(len(orjson.dumps(e)) + len(e["session_id"]) for e in live)
        live_state = await topic_bytes(bootstrap, lenv["REPLAYLENS_APP_ID"] + "-open-sessions", args.partitions)
        results["state_amplification"] = live_state / live_bytes
        lat = sorted(summaries[w] - closed[w] for w in summaries if w in closed)
        p50, p99 = percentile(lat, 0.50), percentile(lat, 0.99)
        results["p99_ms"] = p99
        print(f"5. close->summary at {args.load:.0%} load ({rate:,.0f} events/s live for {args.live_s:.0f} s): "
              f"p50 {p50:,.0f} ms  p99 {p99:,.0f} ms  max {lat[-1] if lat else float('nan'):,.0f} ms "
              f"(target p99 < {TARGET_LATENCY_MS}); {len(lat):,} of {live_sessions:,} sessions")
        results["live_state_amplification"] = live_state / live_bytes
        print(f"             state written under this live traffic: {live_state / live_bytes:.2f}x the input "
              f"bytes (appended pieces: each batch writes what it added, plus heads when a window changes)")

        await trickle_phase(bootstrap, work, args, results)
    print("RESULT " + " ".join(f"{k}={v:.3g}" if v < 100 else f"{k}={v:.0f}" for k, v in results.items()))


async def trickle_phase(bootstrap: str, work: Path, args: argparse.Namespace, results: dict[str, float]) -> None:
    # 6. State written under a real-time trickle: many sessions open, each event seconds apart.
    tenv = isolated_env(bootstrap, work / "trickle", args, "sessionize")
    await create_topics(tenv)
    worker = WorkerProcess(tenv, work / "trickle.log").start()
    try:
        await asyncio.sleep(args.join_s)
        sent = await trickle(bootstrap, topic(tenv, "events"), args.trickle_sessions, args.trickle_s, args.seed)
        await asyncio.sleep(2 * TICK_S + 1)  # the last batch flushed and its state written
    finally:
        worker.stop()
    trickle_state = await topic_bytes(bootstrap, tenv["REPLAYLENS_APP_ID"] + "-open-sessions", args.partitions)
    results["state_amplification"] = trickle_state / max(sent.bytes, 1)
    print(f"6. trickle: {args.trickle_sessions} open sessions, one event each {TRICKLE_GAP_S[0]:.0f}-"
          f"{TRICKLE_GAP_S[1]:.0f} s, {args.trickle_s:.0f} s: {sent.events:,} events, {sent.bytes:,} B in; state "
          f"{trickle_state:,} B = {trickle_state / max(sent.bytes, 1):.2f}x the input (target <= 2)")


@dataclass
class Sent:
    events: int = 0
    bytes: int = 0  # keys and values, as topic_bytes counts the state


async def trickle(bootstrap: str, topic_name: str, sessions: int, seconds: float, seed: int) -> Sent:
    """`sessions` simulated sessions sending at once, each its next event every TRICKLE_GAP_S
    seconds (uniform), stamped with the send time: the open-session state's worst case, where every
    batch touches most sessions with one small event each."""
    rng = random.Random(seed)
    by_session: dict[str, list[dict]] = {}
    for e in simulate(sessions, seed=seed, arrival_gap_ms=1.0, session_end_rate=0.0):
        by_session.setdefault(e["session_id"], []).append(e)
    due = [(rng.uniform(0, TRICKLE_GAP_S[1]), sid, 0) for sid in by_session]
    heapq.heapify(due)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    await producer.start()
    sent, began, futs = Sent(), time.monotonic(), []
    try:
        while due and due[0][0] < seconds:
            at, sid, i = heapq.heappop(due)
            delay = began + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            e = dict(by_session[sid][i], timestamp=int(time.time() * 1000))
            value, key = orjson.dumps(e), sid.encode()
            futs.append(await producer.send(topic_name, value, key=key))
            sent.events, sent.bytes = sent.events + 1, sent.bytes + len(value) + len(key)
            if i + 1 < len(by_session[sid]):
                heapq.heappush(due, (at + rng.uniform(*TRICKLE_GAP_S), sid, i + 1))
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000, help="about this many events (whole sessions)")
    ap.add_argument("--partitions", type=int, default=4, help="partitions of every topic")
    ap.add_argument("--batch", type=int, default=10_000, help="getmany max_records of the baseline and the worker")
    ap.add_argument("--grace-ms", type=int, default=GRACE_MS, help="REPLAYLENS_SESSION_GRACE_MS of the workers")
    ap.add_argument("--load", type=float, default=0.5, help="live rate as a share of the pipeline's sustained rate")
    ap.add_argument("--live-s", type=float, default=20, help="seconds of live traffic for the latency phase")
    ap.add_argument("--join-s", type=float, default=8, help="seconds for the latency worker to join first")
    ap.add_argument("--trickle-sessions", type=int, default=300, help="open sessions of the trickle phase")
    ap.add_argument("--trickle-s", type=float, default=30, help="seconds of the trickle phase")
    ap.add_argument("--trickle-only", action="store_true", help="run only phase 6 (state under a trickle)")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--timeout", type=float, default=300, help="give up on a phase after this many seconds")
    args = ap.parse_args()
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
