# Rewrites the benchmark table in README.md (between the bench-table markers) from
# benchmarks/results/conv_cpu.json. Run from the repository root after `python -m cnnops bench conv`.
import json, sys
d=json.load(open('benchmarks/results/conv_cpu.json'))
lines=["Latest run: `python -m cnnops bench conv`, commit %s, %s (2 cores, AVX2+FMA), PyTorch %s with oneDNN, 2 threads each, measured FMA peak %.0f GFLOP/s and copy bandwidth %.1f GB/s. Full tables (backward GFLOP/s, repeats, errors): [benchmarks/results/conv_cpu.md](benchmarks/results/conv_cpu.md)." % (d['machine']['git']['commit'], d['machine']['cpu'], d['machine']['torch'], d['ceilings']['fma_peak_gflops'], d['ceilings']['copy_bandwidth_gbs']),
"",
"| layer | N×C×H×W, K, R×S | algo | forward speed-up | forward % FMA peak | backward speed-up |",
"|---|---|---|---:|---:|---:|"]
for r in d['layers']:
    s=r['shape']; f=r['forward']; b=r['backward']
    shp="%dx%dx%dx%d k%d %dx%d%s%s%s" % (s['N'],s['C'],s['H'],s['W'],s['K'],s['R'],s['S'], (" s%d"%s['stride']) if s['stride']>1 else "", (" p%d"%s['padding']) if s['padding'] else "", (" g%d"%s['groups']) if s['groups']>1 else "")
    lines.append("| %s | %s | %s | %.2f× | %.0f%% | %.2f× |" % (r['name'], shp, r['algo'], f['speedup'], 100*f['cnnops']['peak_fraction'], b['speedup']))
sm=d['summary']
dw=[r for r in d['layers'] if r['name']=='mobilenet_dw'][0]['forward']['speedup']
lines += ["", "Forward geometric-mean speed-up **%.2f×** (target 1.2×), backward **%.2f×** (target 1.0×), depthwise **%.1f×** (target 5×)." % (sm['forward_geomean_speedup'], sm['backward_geomean_speedup'], dw),
"Targets met: %s. Not met: %s." % ("; ".join(t['target'] for t in sm['targets'] if t['status']=='pass'), "; ".join("%s — %s" % (t['target'], t['detail']) for t in sm['targets'] if t['status']!='pass')),
"", "The machine is a shared 2-core VM and noisy: between consecutive runs single layers move by up to ±20% (both libraries), so quote ratios from one interleaved run, not absolute times."]
fams = d.get("summary_by_family", {})
if len(fams) > 1:
    lines += ["", "Other families in the same run (geometric-mean speed-up vs PyTorch; per-layer tables in the results file):", "",
              "| family | forward | backward | targets not met |", "|---|---:|---:|---|"]
    for name, s in fams.items():
        if name == "conv2d":
            continue
        miss = "; ".join("%s (%s)" % (t["target"], t["detail"]) for t in s["targets"] if t["status"] != "pass") or "none"
        lines.append("| %s | %.2f× | %.2f× | %s |" % (name, s["forward_geomean_speedup"], s["backward_geomean_speedup"], miss))
t="\n".join(lines)
c=open('README.md').read()
start=c.index('<!-- bench-table -->') if '<!-- bench-table -->' in c else None
if start is None:
    c=c.replace('BENCHMARK_TABLE_PLACEHOLDER','<!-- bench-table -->\n'+t+'\n<!-- /bench-table -->')
else:
    end=c.index('<!-- /bench-table -->')
    c=c[:start]+'<!-- bench-table -->\n'+t+'\n'+c[end:]
open('README.md','w').write(c)
