"""10,000 monthly hiring series of length 120 for the `--model auto` timing, drawn as the
simulator draws labour demand (level × annual growth × monthly season × gamma-Poisson
noise). Writes long format id,date,value.

    python3 benches/peers/make_demand_series.py /tmp/demand10k.csv [N] [LENGTH]
"""

import math
import random
import sys

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
length = int(sys.argv[3]) if len(sys.argv) > 3 else 120
rng = random.Random(42)
with open(out, "w") as f:
    f.write("id,date,value\n")
    for s in range(n):
        level = 20 + 200 * rng.random()
        growth = rng.gauss(0, 0.06)
        amp, peak = 0.7 * rng.random(), rng.randrange(12)
        for t in range(length):
            season = 1 + amp * math.cos((t % 12 - peak) * math.pi / 6)
            mu = level * (1 + growth) ** (t / 12) * season
            lam = mu * rng.gammavariate(40, 1 / 40)
            # Poisson by inversion for moderate means; normal approximation above 500.
            if lam > 500:
                y = max(0, round(rng.gauss(lam, math.sqrt(lam))))
            else:
                y, p, c, u = 0, math.exp(-lam), math.exp(-lam), rng.random()
                while u > c:
                    y += 1
                    p *= lam / y
                    c += p
            f.write(f"s{s:05d},{2016 + t // 12}-{t % 12 + 1:02d},{y}\n")
