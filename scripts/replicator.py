"""A stand-in for DynamoDB global tables (multi-Region eventual consistency) between two local
regions' tables in one moto_server: test code, for `make run-regions` and the regions suite,
never deployed.

What it keeps of global tables (docs/ARCHITECTURE.md, "Regions"):
- every write in one region's table (put, update, delete, each item of a transaction on its
  own) reaches the other's after a lag (REPLICATION_LAG_MS, default 1000);
- a conflict is resolved last-writer-wins: each write's time is when this replicator read it
  from its table's stream (the timestamp it keeps per item and table); a replicated write older
  than the other table's latest write of that item is dropped, so both tables end with the
  later write;
- a conditional write sees only its own region's copy (nothing here makes it see the other).
- a region cut off (REPLICATOR_CONTROL_DIR/isolated-<region> exists: `scripts/regions.sh
  isolate a`) keeps its writes: they are read (and timed) as they happen but reach the other
  table only when the file is gone (`scripts/regions.sh reconnect a`), as a failed region's
  pending writes propagate when it comes back; the other region's writes still reach it.

How: the tables' streams (NEW_AND_OLD_IMAGES, turned on here), read every 50 ms; a copy of each
table's items when it starts (the items written before its streams existed). The replicator's
own writes come back on the other table's stream: they are recognised (the images it wrote, in
order) and not sent back.

    python scripts/replicator.py --endpoint URL --table NAME --a us-east-1 --b eu-west-1 [--lag-ms 1000]
"""
import argparse
import heapq
import itertools
import os
import signal
import sys
import time

import boto3

POLL = 0.05
VERBOSE = os.environ.get("REPLICATOR_VERBOSE") == "1"


def client(service, endpoint, region):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    )


class Side:
    """One region's table: its client, its stream's shard iterators, and what was replicated in."""

    def __init__(self, endpoint, region, table):
        self.region, self.table = region, table
        self.db = client("dynamodb", endpoint, region)
        self.streams = client("dynamodbstreams", endpoint, region)
        desc = self.db.describe_table(TableName=table)["Table"]
        self.keys = [k["AttributeName"] for k in desc["KeySchema"]]
        spec = desc.get("StreamSpecification") or {}
        if not spec.get("StreamEnabled"):
            desc = self.db.update_table(
                TableName=table,
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            )["TableDescription"]
        self.stream_arn = desc["LatestStreamArn"]
        self.iterators = {}
        # key -> the time of the latest write of it to this table (ms), and the images this
        # replicator wrote that its stream will echo (in order).
        self.written_at = {}
        self.echoes = {}

    def key_of(self, image):
        return tuple(sorted((k, tuple(sorted(image[k].items()))) for k in self.keys))

    def records(self):
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            sid = shard["ShardId"]
            if sid not in self.iterators:
                self.iterators[sid] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=sid, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            it = self.iterators[sid]
            if it is None:
                continue
            out = self.streams.get_records(ShardIterator=it, Limit=1000)
            self.iterators[sid] = out.get("NextShardIterator")
            yield from out["Records"]

    def scan(self):
        pages = self.db.get_paginator("scan").paginate(TableName=self.table, ConsistentRead=True)
        for page in pages:
            yield from page["Items"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL"))
    p.add_argument("--table", default=os.environ.get("TABLE_NAME", "endpoint-stage"))
    p.add_argument("--a", default="us-east-1")
    p.add_argument("--b", default="eu-west-1")
    p.add_argument("--lag-ms", type=int, default=int(os.environ.get("REPLICATION_LAG_MS", "1000")))
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    a, b = Side(args.endpoint, args.a, args.table), Side(args.endpoint, args.b, args.table)
    other = {id(a): b, id(b): a}
    due = []  # (time due in ms, order, target side, key, image or None, write time)
    order = itertools.count()
    now = lambda: int(time.time() * 1000)  # noqa: E731
    # What each table held before its stream: copied at once, as a new replica is filled.
    for side in (a, b):
        for item in side.scan():
            key = side.key_of(item)
            side.written_at.setdefault(key, now())
            heapq.heappush(due, (now(), next(order), id(other[id(side)]), key, item, now()))
    sides = {id(a): a, id(b): b}
    control = os.environ.get("REPLICATOR_CONTROL_DIR")
    held = []  # writes of a cut-off region, in order

    def isolated(side):
        return bool(control) and os.path.exists(os.path.join(control, f"isolated-{side.region}"))

    print(f"replicator: {args.table} {args.a} <-> {args.b}, lag {args.lag_ms} ms", flush=True)
    while True:
        for side in (a, b):
            for rec in side.records():
                d = rec["dynamodb"]
                image = d.get("NewImage") if rec["eventName"] != "REMOVE" else None
                key = side.key_of(d["Keys"])
                # The replicator's own writes of this key, in order: this record is one of them
                # (and the ones before it were superseded in the stream), or a write of its own.
                echoes = side.echoes.get(key, [])
                if image in echoes:
                    del echoes[: echoes.index(image) + 1]
                    continue
                if VERBOSE:
                    print(f"written in {side.region}: {dict(key)} {rec['eventName']}", flush=True)
                t = now()
                side.written_at[key] = t
                heapq.heappush(due, (t + args.lag_ms, next(order), id(other[id(side)]), key, image, t))
        for entry in [h for h in held if not isolated(other[h[2]])]:
            held.remove(entry)
            heapq.heappush(due, entry)
        while due and due[0][0] <= now():
            entry = heapq.heappop(due)
            _, _, target_id, key, image, t = entry
            target = sides[target_id]
            if isolated(other[target_id]):
                held.append(entry)
                continue
            if target.written_at.get(key, -1) > t:
                continue  # last writer wins: the target's own write is later
            target.written_at[key] = t
            target.echoes.setdefault(key, []).append(image)
            if VERBOSE:
                print(f"replicated to {target.region}: {dict(key)} {'delete' if image is None else 'put'}", flush=True)
            if image is None:
                keys = {k: v for k, v in dict(key).items()}
                target.db.delete_item(TableName=target.table, Key={k: dict(v) for k, v in keys.items()})
            else:
                target.db.put_item(TableName=target.table, Item=image)
        time.sleep(POLL)


if __name__ == "__main__":
    main()
