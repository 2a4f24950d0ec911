"""CPU per message of the worker's own loop (:class:`rollguard.streams.partition.PartitionLoop`),
with no Kafka, Faust or Redis: the fleet of ``bench.fleet_throughput`` fed in time order, the
checkpoint clock following event time as it would live.

    .venv/bin/python -m bench.partition_cost --services 1000 --seconds 60 --linger 0.02,1

Prints the cost per message of reading and judging it, and of the checkpoints amortised
over the messages; with two lingers, the fixed cost of a message and the cost of an event
solved from the two runs.
"""

from __future__ import annotations

import argparse
import time

from bench.fleet_throughput import START_TS, fleet_messages, fleet_rates, solve
from rollguard.detectors.policy import default_policy
from rollguard.streams.partition import PartitionLoop
from rollguard.streams.settings import DEFAULT_CHECKPOINT_S


def run_loop(args: argparse.Namespace, linger: float) -> tuple[int, int, float]:
    """Feed the fleet at ``linger`` to a fresh loop: messages, events, CPU seconds."""
    rates = fleet_rates(args.services, 0.5, 50.0, seed=1)
    messages = list(fleet_messages(rates, args.seconds, linger, seed=1))
    table: dict[bytes, bytes] = {}
    loop: PartitionLoop[int] = PartitionLoop(default_policy(), b"bench", table.get,
                                             args.checkpoint_s)
    offsets = [0] * args.partitions
    events = writes = 0
    per_message = args.seconds / len(messages)
    start = time.process_time()
    for i, (key, value, count) in enumerate(messages):
        partition = hash(key) % args.partitions
        now = START_TS + i * per_message  # event time, spread evenly over the messages
        out = loop.on_message(partition, offsets[partition], key, value, None, now, i)
        offsets[partition] += 1
        events += count
        for _, k, v in out.writes:
            table[k] = v
        writes += len(out.writes)
    cpu = time.process_time() - start
    print(f"-- linger {linger:g} s: {len(messages):,} messages, {events:,} events "
          f"({events / len(messages):.1f} per message), {writes:,} table writes "
          f"(checkpoint every {args.checkpoint_s:g} s)")
    print(f"partition loop: {cpu / len(messages) * 1e6:.0f} µs of CPU per message, "
          f"{cpu / events * 1e6:.1f} µs per event")
    return len(messages), events, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--linger", default="0.02,1", help="comma-separated, in seconds")
    parser.add_argument("--checkpoint-s", type=float, default=DEFAULT_CHECKPOINT_S)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    points = [run_loop(args, float(linger)) for linger in args.linger.split(",")]
    fitted = solve(points) if len(points) >= 2 else None
    if fitted is not None:
        print(f"fitted: {fitted[0]:.0f} µs of CPU per message + {fitted[1]:.1f} µs per event")


if __name__ == "__main__":
    main()
