"""moto_server, with each request handled whole before the next begins, and the costs of
moto's taken off that one line.

Atomic requests. moto's backends take no lock: two concurrent conditional writes (UpdateItem with
a ConditionExpression, TransactWriteItems) can both read the old item and both succeed, which AWS
never allows. The tests race writers on purpose (one challenge, twenty consumers), so the local
emulator must be atomic per request, as DynamoDB is per item. Connections are still accepted
concurrently (moto's threaded server); only the handling of requests is serialized.

What that line costs, measured with py-spy over `make test` (docs/PERFORMANCE.md, section 6):
- A transaction deep-copied every table it names first (moto's rollback), so each
  TransactWriteItems cost time in proportion to the whole table: a fifth of the emulator's time,
  growing as the suites fill the table. Here a transaction keeps a copy of only the items it
  writes, and puts them back if it is cancelled; moto's own transaction code still decides.
- Every KMS key got an RSA-2048 private key, also symmetric and HMAC keys that never sign
  (65 ms each, and the suites create a sealing key per stack): generated on first use now.
- An RSA key (up to 2 s for RSA_4096 on a loaded machine) was generated while every other request
  waited, which made unrelated requests time out. RSA keys now come from a pool of test keys made
  ahead (MOTO_RSA_KEYS); past the pool, one key of each size is made ahead in the background (and
  again when taken); when none is ready, the lock is let go while one is made (the new key is not
  yet visible to anyone).
- A multi-Region key's ciphertexts could not be decrypted (its id did not fit moto's blob).
- A Query read and sorted every item of the table to keep one partition (or, on an index, the
  items with one key value): it is given only those items now.
One KMS operation moto 5.2 lacks is added: GenerateDataKeyPairWithoutPlaintext (ECC_NIST_P256
only), which the `data-key` challenge signing mode uses (issue 31.4; see the end of this file).
Request lines are not logged (werkzeug's log was 5% of the emulator's time); errors still are.
Two lookups moto made for every request are made once: its service folders, a handler's methods
(17% of its CPU over the end-to-end suite). DynamoDB's item responses are written as JSON
directly, not through moto's model-driven serializer (a quarter of its CPU), checked against it.
Started by scripts/stack-lib.sh with moto_server's own arguments."""
import base64
import calendar
import copy
import datetime
import functools
import glob
import inspect
import json
import logging
import os
import queue
import sys
import threading
import time

from moto import backends as moto_backends
from moto import server
from moto.core import responses as moto_responses
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoResult
from moto.kms import models as kms_models
from moto.kms import utils as kms_utils
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_lock = threading.Lock()
_local = threading.local()
_handle = DomainDispatcherApplication.__call__


def _one_at_a_time(self, environ, start_response):
    with _lock:
        _local.holds_lock = True
        try:
            # The whole body inside the lock: a lazy WSGI iterable would run outside it.
            return list(_handle(self, environ, start_response))
        finally:
            _local.holds_lock = False


DomainDispatcherApplication.__call__ = _one_at_a_time


# --- Transactions: keep the items written, not the tables -------------------------------------

_transact = DynamoDBBackend.transact_write_items
_table_deepcopy = getattr(Table, "__deepcopy__", None)


def _table_copy(self, memo):
    """Inside a transaction moto's backup of a table is the table itself (the written items are
    kept by `_remember`); anywhere else a real deep copy."""
    if getattr(_local, "written", None) is not None:
        return self
    if _table_deepcopy is not None:
        return _table_deepcopy(self, memo)
    copied = object.__new__(type(self))
    memo[id(self)] = copied
    for name, value in self.__dict__.items():
        setattr(copied, name, copy.deepcopy(value, memo))
    return copied


def _remember(backend, table_name, key):
    """Before a write inside a transaction: the item as it was, the first time it is written."""
    written = getattr(_local, "written", None)
    if written is None or table_name not in backend.tables:
        return
    table = backend.tables[table_name]
    hash_value, range_value = backend.get_keys_value(table, key)
    slot = (table_name, repr(hash_value), repr(range_value))
    if slot not in written:
        before = table.get_item(hash_value, range_value)
        written[slot] = (table, hash_value, range_value, copy.deepcopy(before))


def _put_back(written):
    for table, hash_value, range_value, before in reversed(list(written.values())):
        if before is None:
            table.delete_item(hash_value, range_value)
        elif range_value:
            table.items[hash_value][range_value] = before
        else:
            table.items[hash_value] = before


def _transact_write_items(self, transact_items):
    _local.written = {}
    try:
        return _transact(self, transact_items)
    except Exception:
        written, _local.written = _local.written, None
        _put_back(written)
        raise
    finally:
        _local.written = None


def _key_of_put(backend, table_name, item_attrs):
    table = backend.tables.get(table_name)
    if table is None:
        return None
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    if not all(name in item_attrs for name in names):
        return None
    return {name: item_attrs[name] for name in names}


def _remembering(write, key_of):
    def wrapped(self, table_name, *args, **kwargs):
        if getattr(_local, "written", None) is not None:
            key = key_of(self, table_name, args, kwargs)
            if key is not None:
                _remember(self, table_name, key)
        return write(self, table_name, *args, **kwargs)

    return wrapped


def _first(name):
    return lambda backend, table_name, args, kwargs: args[0] if args else kwargs.get(name)


DynamoDBBackend.transact_write_items = _transact_write_items
Table.__deepcopy__ = _table_copy
DynamoDBBackend.put_item = _remembering(
    DynamoDBBackend.put_item,
    lambda b, t, args, kwargs: _key_of_put(b, t, args[0] if args else kwargs["item_attrs"]),
)
DynamoDBBackend.update_item = _remembering(DynamoDBBackend.update_item, _first("key"))
DynamoDBBackend.delete_item = _remembering(DynamoDBBackend.delete_item, _first("key"))


# --- Queries: the partition, not the table -------------------------------------------------

_table_query = Table.query
_query_signature = inspect.signature(_table_query)


def _every_item(table):
    for value in table.items.values():
        if isinstance(value, dict):
            yield from value.values()
        else:
            yield value


def _has(item, wanted):
    for name, value in wanted:
        mine = item.attrs.get(name)
        if mine is None or mine != value:
            return False
    return True


def _order(item):
    return (item.hash_key, item.range_key) if item.range_key else item.hash_key


def _query(self, hash_key, *args, **kwargs):
    """moto's Query reads every item of the table, sorted, then keeps the partition asked for;
    here it is given only the items that can match (the partition; for an index, the items
    whose index key attributes have the asked values), in the same order."""
    asked = _query_signature.bind(self, hash_key, *args, **kwargs).arguments
    if asked.get("index_name"):
        wanted = list(asked.get("hash_key_conditions") or [])
        if not wanted:
            return _table_query(self, hash_key, *args, **kwargs)
        candidates = [item for item in _every_item(self) if _has(item, wanted)]
    else:
        partition = self.items.get(hash_key) if hash_key is not None else None
        if partition is None:
            candidates = []
        elif isinstance(partition, dict):
            candidates = list(partition.values())
        else:
            candidates = [partition]
    self.all_items = lambda: sorted(candidates, key=_order)
    try:
        return _table_query(self, hash_key, *args, **kwargs)
    finally:
        del self.all_items


Table.query = _query


# --- KMS keys: private keys when they are needed, RSA generation outside the lock -------------

_generate_private_key = kms_models.generate_private_key


class _OnFirstUse:
    """The private key moto gives a symmetric or HMAC key: made if something ever asks for it."""

    def __init__(self, key_spec):
        self._key_spec = key_spec
        self._key = None

    def __getattr__(self, name):
        if self._key is None:
            self._key = _generate_private_key(self._key_spec)
        return getattr(self._key, name)


# RSA keys from a pool of test keys made ahead (MOTO_RSA_KEYS, a folder of PKCS#8 DER files named
# rsa-<bits>-<n>.der; scripts/stack-lib.sh gives it shared/tests/fixtures/rsa), each handed out
# once: generating them cost the emulators 15 to 18 s of `make test`'s CPU (py-spy), an RSA_4096
# key 1 s and more. When a size's pool is down to its last key, one key of that size is made ahead
# in the background, off any request, and again when taken: CreateKey of an RSA key answers at
# once (an RSA_4096 key takes 4 s and more on a loaded machine, which is the SDK's operation
# timeout: a suite's CreateKey failed so on a fresh clone). Without a pool, keys are made ahead
# from the start.
_RSA_SPECS = ("RSA_2048", "RSA_3072", "RSA_4096")
_ahead = {spec: queue.Queue(maxsize=1) for spec in _RSA_SPECS}
_making_ahead = set()
_pool = {spec: [] for spec in _RSA_SPECS}


def _load_pool(folder):
    """The pool's files by size; each is read when it is taken."""
    for spec in _RSA_SPECS:
        bits = spec.split("_")[1]
        _pool[spec] = sorted(glob.glob(os.path.join(folder, f"rsa-{bits}-*.der")))


def _pooled_key(key_spec, path):
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    bits = int(key_spec.split("_")[1])
    with open(path, "rb") as f:
        # The repository's own test keys: OpenSSL's key check (primality tests of both primes)
        # cost more than a second per key of 4,096 bits.
        key = load_der_private_key(f.read(), password=None, unsafe_skip_rsa_key_validation=True)
    if key.key_size != bits:
        raise ValueError(f"moto_server: {path} is not an RSA key of {bits} bits")
    # moto's own wrapper, as its generate_private_key makes it, around the pool's key.
    wrapped = kms_utils.RSAPrivateKey.__new__(kms_utils.RSAPrivateKey)
    wrapped.key_size, wrapped.private_key = bits, key
    return wrapped


def _make_ahead(key_spec):
    while True:
        _ahead[key_spec].put(_generate_private_key(key_spec))


def _start_making_ahead(key_spec):
    if key_spec not in _making_ahead:
        _making_ahead.add(key_spec)
        threading.Thread(target=_make_ahead, args=(key_spec,), daemon=True).start()


def _from_pool(key_spec):
    """The pool's next key of this size (None when it is empty); runs under the request lock."""
    pool = _pool.get(key_spec)
    if not pool:
        return None
    if len(pool) <= 1:
        _start_making_ahead(key_spec)
    return _pooled_key(key_spec, pool.pop(0))


def _private_key(key_spec):
    pooled = _from_pool(key_spec)
    if pooled is not None:
        return pooled
    if key_spec in _ahead:
        try:
            return _ahead[key_spec].get_nowait()
        except queue.Empty:
            pass
    if key_spec.startswith("RSA_"):
        if not getattr(_local, "holds_lock", False):
            return _generate_private_key(key_spec)
        # The new key is in no backend yet: nothing another request can see changes meanwhile.
        _lock.release()
        try:
            return _generate_private_key(key_spec)
        finally:
            _lock.acquire()
    if key_spec.startswith("ECC_"):
        return _generate_private_key(key_spec)
    return _OnFirstUse(key_spec)


kms_models.generate_private_key = _private_key

# --- KMS ciphertexts of multi-Region keys ------------------------------------------------------
# moto writes the key id into a fixed 36-byte field of its ciphertext blobs: a multi-Region key's
# id (`mrk-` and 36 more) is cut to 36, and Decrypt then answers AccessDeniedException for its
# own ciphertexts. The field is 40 bytes here (shorter ids padded, the padding stripped on read).

_KEY_ID_LEN = 40
kms_utils.KEY_ID_LEN = _KEY_ID_LEN
kms_utils.HEADER_LEN = _KEY_ID_LEN + kms_utils.IV_LEN + kms_utils.TAG_LEN
kms_utils.CIPHERTEXT_HEADER_FORMAT = f">{_KEY_ID_LEN}s{kms_utils.IV_LEN}s{kms_utils.TAG_LEN}s"
_deserialize = kms_utils._deserialize_ciphertext_blob


def _deserialize_padded(ciphertext_blob):
    c = _deserialize(ciphertext_blob)
    return c._replace(key_id=c.key_id.rstrip("\x00"))


kms_utils._deserialize_ciphertext_blob = _deserialize_padded

# --- KMS signatures, counted for `make bench-abuse` ----------------------------------------------
# With MOTO_COUNT_SIGNS=1, each KMS Sign writes one line `kms-sign <unix time> <key id>` to the
# log (stderr): the benchmark counts the signatures its clients caused. Off by default.

if os.environ.get("MOTO_COUNT_SIGNS") == "1":
    _sign = kms_models.KmsBackend.sign

    def _counted_sign(self, key_id, *args, **kwargs):
        print(f"kms-sign {time.time():.3f} {key_id}", file=sys.stderr, flush=True)
        return _sign(self, key_id, *args, **kwargs)

    kms_models.KmsBackend.sign = _counted_sign

# --- KMS GenerateDataKeyPairWithoutPlaintext (moto 5.2 has no GenerateDataKeyPair*) -------------
# As AWS documents it: a new key pair of KeyPairSpec, the public key as DER SubjectPublicKeyInfo,
# the private key as DER PKCS#8 encrypted by moto's own Encrypt under KeyId with the request's
# EncryptionContext (so Decrypt with another context fails, as on AWS). Only ECC_NIST_P256,
# the one spec the code asks for; anything else is a ValidationException.

from cryptography.hazmat.primitives import serialization as _serialization
from cryptography.hazmat.primitives.asymmetric import ec as _ec
from moto.kms.exceptions import ValidationException as _KmsValidation
from moto.kms.responses import KmsResponse as _KmsResponse


def _generate_data_key_pair_without_plaintext(self):
    import base64
    import json

    key_id = self._get_param("KeyId")
    spec = self._get_param("KeyPairSpec")
    context = self._get_param("EncryptionContext", {})
    self._validate_key_id(key_id)
    if spec != "ECC_NIST_P256":
        raise _KmsValidation(f"KeyPairSpec {spec} is not emulated (only ECC_NIST_P256)")
    private = _ec.generate_private_key(_ec.SECP256R1())
    pkcs8 = private.private_bytes(
        _serialization.Encoding.DER,
        _serialization.PrivateFormat.PKCS8,
        _serialization.NoEncryption(),
    )
    spki = private.public_key().public_bytes(
        _serialization.Encoding.DER, _serialization.PublicFormat.SubjectPublicKeyInfo
    )
    wrapped, arn = self.kms_backend.encrypt(
        key_id=key_id, plaintext=pkcs8, encryption_context=context
    )
    return json.dumps(
        {
            "KeyId": arn,
            "KeyPairSpec": spec,
            "PublicKey": base64.b64encode(spki).decode(),
            "PrivateKeyCiphertextBlob": base64.b64encode(wrapped).decode(),
        }
    )


_KmsResponse.generate_data_key_pair_without_plaintext = _generate_data_key_pair_without_plaintext


# With MOTO_COUNT_SIGNS=1 Decrypt is counted too (`kms-decrypt <unix time> <key arn>`): the signing
# benchmark counts each mode's KMS calls per challenge (make bench-signing).
if os.environ.get("MOTO_COUNT_SIGNS") == "1":
    _decrypt = kms_models.KmsBackend.decrypt

    def _counted_decrypt(self, *args, **kwargs):
        plaintext, arn = _decrypt(self, *args, **kwargs)
        print(f"kms-decrypt {time.time():.3f} {arn}", file=sys.stderr, flush=True)
        return plaintext, arn

    kms_models.KmsBackend.decrypt = _counted_decrypt

# Request lines off (errors are still logged).
logging.getLogger("werkzeug").setLevel(logging.ERROR)


# --- DynamoDB item responses written as JSON directly --------------------------------------------
# moto 5.2 writes every response through its model-driven serializer, which looks each member of
# the output shape up in the result (for an item, each of an AttributeValue's ten members per
# attribute): a quarter of the emulator's CPU in `make test` (py-spy). The item operations' results
# are already what DynamoDB's JSON protocol sends (moto's dynamo_to_dict: attribute values as
# {"S": ...}, numbers as strings), so they are written as they are, binaries in base64 and dates
# as seconds (DescribeTable too: the functions' health checks call it). Anything else that is not
# plain JSON goes through the serializer. MOTO_VERIFY_JSON=N serializes every Nth such response
# both ways, answers the serializer's, and logs a line starting "MOTO_VERIFY_JSON mismatch" where
# they differ: `make test` checks every 10th and fails on such a line, `make test-long` checks
# every one (scripts/test.sh). Checked over a whole `make test`: no difference.
_PLAIN_JSON_OPERATIONS = {
    "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
    "BatchWriteItem", "TransactWriteItems", "TransactGetItems", "DescribeTable",
}
_VERIFY_JSON_EVERY = int(os.environ.get("MOTO_VERIFY_JSON") or 0)
_plain_json_count = 0
_serialized_by_model = DynamoResult.execute_result


def _json_value(value):
    """What the JSON protocol sends for a binary (base64) and a timestamp (seconds since the
    epoch, milliseconds as a fraction), as moto's serializer writes them."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.datetime):
        seconds = calendar.timegm(value.utctimetuple())
        return seconds + (value.microsecond // 1000) / 1000.0 if value.microsecond else seconds
    raise TypeError(f"{type(value).__name__} is not plain JSON")


def _execute_result(self, context):
    global _plain_json_count
    operation = context.operation_model.name
    if operation in _PLAIN_JSON_OPERATIONS:
        result = self.result
        if isinstance(result, dict):
            # What the output shape has no member for (DeleteItem's ConsumedCapacityUnits), the
            # serializer leaves out; so does this.
            members = context.operation_model.output_shape.members
            result = {k: v for k, v in result.items() if k in members}
        try:
            body = json.dumps(result, separators=(",", ":"), default=_json_value)
        except (TypeError, ValueError):
            body = None
        if body is not None:
            plain = (200, {"Content-Type": "application/x-amz-json-1.0"}, body)
            _plain_json_count += 1  # under the request lock (_one_at_a_time)
            if not _VERIFY_JSON_EVERY or _plain_json_count % _VERIFY_JSON_EVERY:
                return plain
            status, headers, model_body = _serialized_by_model(self, context)
            direct, by_model = json.loads(body), json.loads(model_body or "{}")
            if (status, dict(headers), by_model) != (200, plain[1], direct):
                # Which fields differ, not their values (the items are the suites' data).
                if isinstance(direct, dict) and isinstance(by_model, dict):
                    fields = sorted(k for k in set(direct) | set(by_model) if direct.get(k) != by_model.get(k))
                else:
                    fields = ["(the whole body)"]
                print(
                    f"MOTO_VERIFY_JSON mismatch: {operation}: fields {fields}, status {status}, "
                    f"headers {sorted(dict(headers).items())}",
                    file=sys.stderr,
                    flush=True,
                )
            return status, headers, model_body
    return _serialized_by_model(self, context)


DynamoResult.execute_result = _execute_result

# --- Per-request lookups that never change, done once ----------------------------------------
# py-spy over the end-to-end suite (docs/PERFORMANCE.md, 6f): for every request moto listed its
# own package directory (a stat of each of its ~150 service folders, to tell whether the host
# names a service: 10% of the emulator's CPU) and enumerated the handler class's methods with
# `inspect.getmembers` (to tell whether the action is one of them: 7%). Both answers depend only
# on the installed package and the class, so each is computed once.
_moto_modules = tuple(moto_backends.list_of_moto_modules())
moto_backends.list_of_moto_modules = lambda: _moto_modules
moto_responses.method_names_from_class = functools.lru_cache(maxsize=None)(moto_responses.method_names_from_class)

if __name__ == "__main__":
    if os.environ.get("MOTO_RSA_KEYS"):
        _load_pool(os.environ["MOTO_RSA_KEYS"])
    for spec in _RSA_SPECS:
        if not _pool[spec]:
            _start_making_ahead(spec)
    server.main(sys.argv[1:])
