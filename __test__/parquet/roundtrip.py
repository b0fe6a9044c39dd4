"""Parquet round-trip helper of __test__/parquet-roundtrip.test.ts (pyarrow).

  roundtrip.py make DIR        writes DIR/<name>.parquet: files with every type
                               pyarrow writes, one per writer configuration,
                               and files of one kind of column each; prints
                               their paths as JSON {name: path}, with `summary`:
                               a summary file whose columns live in another file
  roundtrip.py compare IN OUT WEIGHT_FIELD
                               checks that OUT holds rows of IN (matched by the
                               `id` column, in input order) equal value for value
                               and type for type, plus WEIGHT_FIELD as double
                               (none when WEIGHT_FIELD is '');
                               prints a JSON report, exits 1 on any difference
"""
import datetime as dt
import decimal
import json
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

N = 60
GROUP = 16  # rows per row group: several groups, the last one short


def nullify(values, every=7, at=3):
    return [None if i % every == at else v for i, v in enumerate(values)]


def cycle(values):
    return [values[i % len(values)] for i in range(N)]


def table():
    words = ['bread', 'garden', 'violin', 'river', 'planet', 'coffee', 'chess', 'winter']
    cols = {}
    cols['id'] = pa.array(range(N), pa.int64())
    cols['prompt'] = pa.array([f'How do I get better at {words[i % 8]} number {i}? \u00e9\u4e2d' for i in range(N)])
    cols['response'] = pa.array([f'Practice {words[(i * 3) % 8]} every day, step {i}. \U0001F600' for i in range(N)])
    cols['b'] = pa.array(nullify(cycle([True, False, False])), pa.bool_())
    for name, t, lo, hi in [('i8', pa.int8(), -128, 127), ('i16', pa.int16(), -32768, 32767),
                            ('i32', pa.int32(), -2**31, 2**31 - 1), ('i64', pa.int64(), -2**63, 2**63 - 1),
                            ('u8', pa.uint8(), 0, 255), ('u16', pa.uint16(), 0, 65535),
                            ('u32', pa.uint32(), 0, 2**32 - 1), ('u64', pa.uint64(), 0, 2**64 - 1)]:
        cols[name] = pa.array(nullify(cycle([lo, hi, 0, 1, hi - 1, lo + 1, (lo + hi) // 3])), t)
    cols['i32_req'] = pa.array(cycle([-2**31, 2**31 - 1, 7]), pa.int32())
    special = [float('nan'), -0.0, 0.0, float('inf'), float('-inf'), 1.5, -2.25]
    cols['f16'] = pa.array(nullify(cycle(special + [65504.0, 6e-08])), pa.float16()) if hasattr(pa, 'float16') else None
    cols['f32'] = pa.array(nullify(cycle(special + [1e-45, 3.4028234663852886e38])), pa.float32())
    cols['f64'] = pa.array(nullify(cycle(special + [5e-324, 1.7976931348623157e308])), pa.float64())
    D = decimal.Decimal
    cols['dec7_3'] = pa.array(nullify(cycle([D('1234.567'), D('-9999.999'), D('0.001')])), pa.decimal128(7, 3))
    cols['dec18_4'] = pa.array(nullify(cycle([D('99999999999999.9999'), D('-1.0000')])), pa.decimal128(18, 4))
    cols['dec38_10'] = pa.array(nullify(cycle([D('9' * 28 + '.' + '9' * 10), D('-0.0000000001')])), pa.decimal128(38, 10))
    cols['dec76_30'] = pa.array(nullify(cycle([D('-' + '9' * 46 + '.' + '9' * 30), D('1.5')])), pa.decimal256(76, 30))
    days = cycle([dt.date(1970, 1, 1), dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(2024, 2, 29)])
    cols['date32'] = pa.array(nullify(days), pa.date32())
    cols['date64'] = pa.array(nullify(days), pa.date64())
    cols['time32s'] = pa.array(nullify(cycle([0, 86399, 3600])), pa.time32('s'))
    cols['time32ms'] = pa.array(nullify(cycle([0, 86399999, 1])), pa.time32('ms'))
    cols['time64us'] = pa.array(nullify(cycle([0, 86399999999, 1])), pa.time64('us'))
    cols['time64ns'] = pa.array(nullify(cycle([0, 86399999999999, 1])), pa.time64('ns'))
    # nanosecond digits everywhere: a writer that goes through milliseconds loses them
    ns = cycle([1_700_000_000_123_456_789, -1, 0, 2**62, -2**62, 1])
    for unit, div in [('s', 10**9), ('ms', 10**6), ('us', 10**3), ('ns', 1)]:
        cols[f'ts_{unit}'] = pa.array(nullify([v // div for v in ns]), pa.timestamp(unit))
        cols[f'dur_{unit}'] = pa.array(nullify([v // div for v in ns]), pa.duration(unit))
    cols['ts_ns_utc'] = pa.array(nullify(ns), pa.timestamp('ns', tz='UTC'))
    cols['ts_us_paris'] = pa.array(nullify([v // 1000 for v in ns]), pa.timestamp('us', tz='Europe/Paris'))
    cols['ts_ms_offset'] = pa.array(nullify([v // 10**6 for v in ns]), pa.timestamp('ms', tz='+05:30'))
    cols['ts_s_newyork'] = pa.array(nullify([v // 10**9 for v in ns]), pa.timestamp('s', tz='America/New_York'))
    texts = ['', 'plain', 'caf\u00e9 \u4e2d\u6587', '\U0001F600 emoji', 'nul\x00inside']
    cols['str'] = pa.array(nullify(cycle(texts)), pa.string())
    cols['lstr'] = pa.array(nullify(cycle(texts)), pa.large_string())
    blobs = [b'', b'\xff\xfe\x00\x80', b'\xc3\x28 invalid utf-8', bytes(range(256)), b'\xed\xa0\x80']
    cols['bin'] = pa.array(nullify(cycle(blobs)), pa.binary())
    cols['lbin'] = pa.array(nullify(cycle(blobs)), pa.large_binary())
    cols['fsb4'] = pa.array(nullify(cycle([b'\x00\x00\x00\x00', b'\xff\xff\xff\xff', b'ab\x80c'])), pa.binary(4))
    cols['dict_str'] = pa.array(nullify(cycle(['red', 'green', 'blue', '\u00fcber'])), pa.string()).dictionary_encode()
    cols['dict_i8_str'] = pa.DictionaryArray.from_arrays(pa.array(nullify(cycle([0, 1, 2])), pa.int8()), pa.array(['x', 'y', 'z']))
    cols['dict_int'] = pa.array(nullify(cycle([10**12, -5, 10**12])), pa.int64()).dictionary_encode()
    cols['list_i64'] = pa.array(nullify(cycle([[1, 2, 3], [], [None, -2**63], [2**63 - 1]])), pa.list_(pa.int64()))
    cols['llist_str'] = pa.array(nullify(cycle([['a', None, ''], [], ['\U0001F600']])), pa.large_list(pa.string()))
    cols['fsl_f32'] = pa.array(nullify(cycle([[1.0, 2.0, 3.0], [None, -0.0, float('inf')]])), pa.list_(pa.float32(), 3))
    cols['list_list'] = pa.array(nullify(cycle([[[1], [], None, [2, 3]], [], [[None]]])), pa.list_(pa.list_(pa.int32())))
    st = pa.struct([('a', pa.int32()), ('b', pa.struct([('c', pa.string()), ('d', pa.list_(pa.float64()))]))])
    cols['struct'] = pa.array(nullify(cycle([{'a': 1, 'b': {'c': 'x', 'd': [1.5, None]}}, {'a': None, 'b': None},
                                              {'a': -7, 'b': {'c': None, 'd': []}}])), st)
    msg = pa.struct([('role', pa.string()), ('content', pa.string())])
    cols['list_struct'] = pa.array(nullify(cycle([[{'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': None}], [], [None]])), pa.list_(msg))
    cols['map_si'] = pa.array(nullify(cycle([[('a', 1), ('b', None)], [], [('\u00e9', -3)]])), pa.map_(pa.string(), pa.int32()))
    cols['map_nested'] = pa.array(nullify(cycle([[('k', [1, 2])], [('n', None), ('e', [])]])), pa.map_(pa.string(), pa.list_(pa.int64())))
    cols['null_col'] = pa.nulls(N)
    if hasattr(pa, 'uuid'):
        cols['uuid'] = pa.array(nullify(cycle([bytes(range(16)), b'\xff' * 16])), pa.uuid())
    if hasattr(pa, 'json_'):
        cols['json'] = pa.array(nullify(cycle(['{"a": [1, 2]}', 'null', '"\u00e9"'])), pa.json_())
    cols['sview'] = pa.array(nullify(cycle(texts)), pa.string_view())
    cols['bview'] = pa.array(nullify(cycle(blobs)), pa.binary_view())
    t = pa.table({k: v for k, v in cols.items() if v is not None})
    # REQUIRED columns too (no definition levels)
    return t.cast(pa.schema([f.with_nullable(False) if f.name in ('id', 'i32_req') else f for f in t.schema]))


# name: (columns, pyarrow writer options); the id, prompt and response columns are in every file
FILES = {
    # every type with pyarrow's defaults: dictionary pages, data page v1, snappy
    'default': (None, {}),
    # data page v2, plain and delta/byte-stream-split encodings, zstd, INT96 timestamps, integer decimals
    'v2': (None, dict(use_dictionary=False, data_page_version='2.0', compression='zstd',
                      use_deprecated_int96_timestamps=True, store_decimal_as_integer=True,
                      column_encoding={'i32': 'DELTA_BINARY_PACKED', 'i64': 'DELTA_BINARY_PACKED',
                                       'f64': 'BYTE_STREAM_SPLIT', 'f32': 'BYTE_STREAM_SPLIT',
                                       'str': 'DELTA_BYTE_ARRAY', 'lstr': 'DELTA_LENGTH_BYTE_ARRAY'})),
    # the oldest format version (converted types only), legacy list layout, small pages, gzip
    'legacy': (None, dict(version='1.0', coerce_timestamps='ms', allow_truncated_timestamps=True,
                          use_compliant_nested_type=False, data_page_size=64, compression='gzip')),
    # per-column dictionary choice, lz4 and brotli, no statistics
    'mixed': (None, dict(use_dictionary=['dict_str', 'str', 'i8', 'u64', 'f16'],
                         compression={'prompt': 'lz4', 'response': 'brotli'}, write_statistics=False)),
    # one file per kind of column, so that a failure names its kind
    'integers': (['b', 'i8', 'i16', 'i32', 'i64', 'u8', 'u16', 'u32', 'u64', 'i32_req'], {}),
    'times': (['date32', 'date64', 'time32s', 'time32ms', 'time64us', 'time64ns', 'ts_s', 'ts_ms', 'ts_us', 'ts_ns',
               'ts_ns_utc', 'ts_us_paris', 'ts_ms_offset', 'ts_s_newyork', 'dur_s', 'dur_ms', 'dur_us', 'dur_ns'], {}),
    'binary': (['bin', 'lbin', 'fsb4', 'bview', 'str', 'lstr', 'sview'], {}),
    'nested': (['list_i64', 'llist_str', 'fsl_f32', 'list_list', 'struct', 'list_struct', 'map_si', 'map_nested'], {}),
}


def make(folder):
    t = table()
    paths = {}
    for name, (columns, options) in FILES.items():
        path = f'{folder}/{name}.parquet'
        pq.write_table(t if columns is None else t.select(['id', 'prompt', 'response'] + columns), path,
                       row_group_size=GROUP, **options)
        paths[name] = path
    # a dataset's summary file: its column chunks point into the data files (file_path)
    collected = []
    pq.write_table(t.select(['id', 'prompt', 'response', 'u8']), f'{folder}/part-0.parquet', metadata_collector=collected)
    collected[0].set_file_path('part-0.parquet')
    paths['summary'] = f'{folder}/summary.parquet'
    pq.write_metadata(t.select(['id', 'prompt', 'response', 'u8']).schema, paths['summary'], metadata_collector=collected)
    print(json.dumps(paths))


def same(a, b):
    """Equal values and types; floats compared bit for bit (NaN payloads, -0.0)."""
    if a.type != b.type:
        return False
    t = a.type
    if pa.types.is_dictionary(t):  # the dictionary itself is an encoding: compare what it encodes
        return same(a.dictionary_decode(), b.dictionary_decode())
    if pa.types.is_floating(t):
        bits = {2: pa.uint16(), 4: pa.uint32(), 8: pa.uint64()}[t.bit_width // 8]
        return (a.is_null().equals(b.is_null())
                and pc.if_else(a.is_null(), pa.scalar(0, bits), a.view(bits)).equals(pc.if_else(b.is_null(), pa.scalar(0, bits), b.view(bits))))
    return a.equals(b)


def take(column, ids):
    """The rows `ids` of a column (view types have no take kernel: through their large form)."""
    t = column.type
    if t == pa.string_view() or t == pa.binary_view():
        large = pa.large_string() if t == pa.string_view() else pa.large_binary()
        return column.cast(large).take(pa.array(ids, pa.int64())).cast(t)
    return column.take(pa.array(ids, pa.int64()))


def show(column, i):
    try:
        return repr(column.slice(i, 1).to_pylist()[0])
    except Exception:  # values Python cannot hold (dates past year 9999 ...)
        return str(column.slice(i, 1))


def compare(inp, out, weight):
    src = pq.read_table(inp)
    try:
        got = pq.read_table(out)
    except Exception as err:  # the point of the test: say so, not a traceback
        print(json.dumps({'rows': None, 'columns': len(src.column_names), 'problems': [f'pyarrow cannot read the output: {err}']}))
        return 1
    problems = []
    # `weight`: the added columns, comma-separated, each double or, as `name:string`, text
    # (one: the weight; the removed file adds score, rank, pull, push and the reason)
    specs = [f.split(':') for f in weight.split(',') if f]
    added = [s[0] for s in specs]
    text = {s[0] for s in specs if s[1:] == ['string']}
    doubles = [f for f in added if f not in text]
    want_names = src.column_names + [f for f in added if f not in src.column_names]
    if got.column_names != want_names:
        problems.append(f'columns {got.column_names} != {want_names}')
    ids = got.column('id').to_pylist() if 'id' in got.column_names else []
    if ids != sorted(ids) or len(set(ids)) != len(ids) or not ids:
        problems.append(f'ids not a non-empty increasing subset: {ids}')
    if problems:
        print(json.dumps({'rows': got.num_rows, 'columns': len(src.column_names), 'problems': problems}))
        return 1
    for name in src.column_names:
        sf, gf = src.schema.field(name), got.schema.field(name)
        if sf.type != gf.type or sf.nullable != gf.nullable:
            problems.append(f'{name}: type {gf.type} (nullable {gf.nullable}) != {sf.type} (nullable {sf.nullable})')
            continue
        a = take(src.column(name).combine_chunks(), ids)
        b = got.column(name).combine_chunks()
        if not same(a, b):
            diff = next(i for i in range(len(a)) if not same(a.slice(i, 1), b.slice(i, 1)))
            problems.append(f'{name}: output row {diff} holds {show(b, diff)}, the input {show(a, diff)}')
    for field in text:
        t = got.column(field)
        if t.type != pa.string():
            problems.append(f'{field}: type {t.type} != string')
        elif t.null_count or not pc.all(pc.greater(pc.utf8_length(t), 0)).as_py():
            problems.append(f'{field}: every value must be a non-empty string')
    for field in doubles:
        w = got.column(field)
        if w.type != pa.float64():
            problems.append(f'{field}: type {w.type} != double')
        elif w.null_count or not pc.all(pc.is_finite(w)).as_py():
            problems.append(f'{field}: values must be finite numbers')
        elif len(doubles) == 1 and not pc.all(pc.greater(w, 0)).as_py():
            problems.append(f'{field}: weights must be positive numbers')
    meta_in = pq.read_metadata(inp)
    meta_out = pq.read_metadata(out)
    for i in range(meta_in.num_columns):
        a, b = meta_in.schema.column(i), meta_out.schema.column(i)
        if (a.path, a.physical_type, str(a.logical_type), a.converted_type, a.max_definition_level, a.max_repetition_level) != \
           (b.path, b.physical_type, str(b.logical_type), b.converted_type, b.max_definition_level, b.max_repetition_level):
            problems.append(f'Parquet column {a.path}: {b.physical_type} {b.logical_type} {b.converted_type} != {a.physical_type} {a.logical_type} {a.converted_type}')
    print(json.dumps({'rows': got.num_rows, 'columns': len(src.column_names), 'problems': problems}))
    return 1 if problems else 0


if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'make':
        make(sys.argv[2])
    elif cmd == 'compare':
        sys.exit(compare(sys.argv[2], sys.argv[3], sys.argv[4]))
    else:
        sys.exit(f'unknown command {cmd}')
