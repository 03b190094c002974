// Decodes a gzipped pprof profile with pprof-format (Datadog's decoder,
// pinned by package-lock.json) and node's own gunzip, and prints it as JSON
// for tests/export_test.py: sample types, default sample type, duration,
// comments, and each sample's values and stack (leaf first), each location
// as its lines ({function, file, line}, the inlined functions first).
//
//   node decode.mjs PROFILE.pb.gz
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';

const raw = gunzipSync(readFileSync(process.argv[2]));
const p = Profile.decode(raw);
const str = (i) => p.stringTable.strings[Number(i)];
const functions = new Map(p.function.map((f) => [Number(f.id), f]));
const locations = new Map(p.location.map((l) => [Number(l.id), l]));
const out = {
  string0: str(0),
  sampleType: p.sampleType.map((t) => [str(t.type), str(t.unit)]),
  defaultSampleType: str(p.defaultSampleType),
  periodType: p.periodType ? [str(p.periodType.type), str(p.periodType.unit)] : null,
  durationNanos: Number(p.durationNanos),
  comments: p.comment.map(str),
  nlocations: p.location.length,
  nfunctions: p.function.length,
  samples: p.sample.map((s) => ({
    values: s.value.map(Number),
    stack: s.locationId.map((id) => {
      const l = locations.get(Number(id));
      if (!l) throw new Error(`sample names location ${id}, which is not in the profile`);
      return l.line.map((ln) => {
        const f = functions.get(Number(ln.functionId));
        if (!f) throw new Error(`location ${id} names function ${ln.functionId}, not in the profile`);
        return { function: str(f.name), file: str(f.filename), line: Number(ln.line) };
      });
    }),
  })),
};
process.stdout.write(JSON.stringify(out));
