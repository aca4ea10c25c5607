"""Per-filter statistics of conv1 in a DeepSight fmnist-cnn safetensors file (F16 or F32):
RMS (of the trained 1-channel filter) and the fraction of its energy at high spatial
frequency (|f| > 1/4 cycle per pixel on either axis, naive DFT), a measure of the
aliasing/noise artefacts Zeiler & Fergus fig. 6 shows for a large first-layer stride."""
import json, math, struct, sys

def read(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    head = json.loads(b[8:8 + n])
    info = head['conv1.weight']
    s, e = info['data_offsets']
    raw = b[8 + n + s:8 + n + e]
    fmt = {'F16': 'e', 'F32': 'f'}[info['dtype']]
    vals = struct.unpack('<%d%s' % (len(raw) // struct.calcsize(fmt), fmt), raw)
    return info['shape'], vals

def stats(path):
    (c, ci, k, _), v = read(path)
    out = []
    for f in range(c):
        w = v[f * ci * k * k:(f + 1) * ci * k * k]
        rms = math.sqrt(sum(x * x for x in w) / len(w))
        mean = sum(w) / len(w)
        tot, high = 0.0, 0.0
        for u in range(k):
            for vv in range(k):
                re = im = 0.0
                for y in range(k):
                    for x in range(k):
                        a = -2 * math.pi * (u * y + vv * x) / k
                        re += (w[y * k + x] - mean) * math.cos(a)
                        im += (w[y * k + x] - mean) * math.sin(a)
                p = re * re + im * im
                fu, fv = min(u, k - u) / k, min(vv, k - vv) / k
                tot += p
                if fu > 0.25 or fv > 0.25:
                    high += p
        # Lag-1 correlation of neighbouring taps (rows and columns): ~0 for white noise,
        # near 1 for smooth filters.
        num = den = 0.0
        for y in range(k):
            for x in range(k):
                d = w[y * k + x] - mean
                den += d * d
                if x + 1 < k:
                    num += d * (w[y * k + x + 1] - mean)
                if y + 1 < k:
                    num += d * (w[(y + 1) * k + x] - mean)
        pairs = 2 * k * (k - 1)
        corr = (num / pairs) / (den / (k * k)) if den else 0.0
        out.append({'filter': f, 'rms': rms, 'high_frequency_fraction': high / tot if tot else 0.0,
                    'neighbour_correlation': corr})
    return out

if __name__ == '__main__':
    res = {}
    for path in sys.argv[1:]:
        s = stats(path)
        hf = [x['high_frequency_fraction'] for x in s]
        rms = [x['rms'] for x in s]
        res[path] = {'filters': len(s), 'rms_min': min(rms), 'rms_max': max(rms),
                     'dead_rms_below_0.01': sum(r < 0.01 for r in rms),
                     'high_frequency_fraction_mean': sum(hf) / len(hf),
                     'neighbour_correlation_mean': sum(x['neighbour_correlation'] for x in s) / len(s),
                     'per_filter': s}
        print(path, {k: v for k, v in res[path].items() if k != 'per_filter'})
    json.dump(res, open('/work/runs/filter_stats.json', 'w'), indent=1)
