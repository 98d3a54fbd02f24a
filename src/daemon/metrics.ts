/**
 * A small Prometheus text-format registry: gauges and counters with optional labels. flanneld
 * upstream exposes no metrics at all; operators asked for lease, peer and datastore state.
 *
 * @module
 */

type Labels = Record<string, string>;

interface Series {
  name: string;
  help: string;
  type: "gauge" | "counter";
  values: Map<string, { labels: Labels; value: number }>;
}

/**
 * Where a component reports values it keeps itself (the udp loop's counters, a cloud backend's
 * checks): called at every scrape, so the numbers are current without a push per packet.
 */
export interface MetricsSink {
  /** Sets a gauge. */
  set(name: string, help: string, value: number, labels?: Labels): void;
  /** Sets a counter to its running total (the component counts; never decreases). */
  counter(name: string, help: string, total: number, labels?: Labels): void;
}

/** Metric families, rendered in registration order. */
export class Metrics implements MetricsSink {
  readonly #series = new Map<string, Series>();
  readonly #collectors: ((sink: MetricsSink) => void)[] = [];

  /** Adds a collector, run before every {@linkcode render}; one that throws is skipped. */
  collect(fn: (sink: MetricsSink) => void): void {
    this.#collectors.push(fn);
  }

  /** Sets a counter to a running total kept elsewhere. */
  counter(name: string, help: string, total: number, labels: Labels = {}): void {
    this.#get(name, help, "counter").values.set(labelKey(labels), { labels, value: total });
  }

  #get(name: string, help: string, type: Series["type"]): Series {
    let s = this.#series.get(name);
    if (!s) {
      s = { name, help, type, values: new Map() };
      this.#series.set(name, s);
    }
    return s;
  }

  /** Sets a gauge. */
  set(name: string, help: string, value: number, labels: Labels = {}): void {
    this.#get(name, help, "gauge").values.set(labelKey(labels), { labels, value });
  }

  /** Adds to a counter. */
  inc(name: string, help: string, by = 1, labels: Labels = {}): void {
    const s = this.#get(name, help, "counter");
    const k = labelKey(labels);
    const cur = s.values.get(k);
    s.values.set(k, { labels, value: (cur?.value ?? 0) + by });
  }

  /** The value of one series (for tests and readiness). */
  value(name: string, labels: Labels = {}): number | undefined {
    return this.#series.get(name)?.values.get(labelKey(labels))?.value;
  }

  /** The Prometheus text exposition format, version 0.0.4. */
  render(): string {
    for (const c of this.#collectors) {
      try {
        c(this);
      } catch {
        // a collector's failure must not cost the scrape the other metrics
      }
    }
    let out = "";
    for (const s of this.#series.values()) {
      out += `# HELP ${s.name} ${s.help}\n# TYPE ${s.name} ${s.type}\n`;
      for (const { labels, value } of s.values.values()) out += `${s.name}${renderLabels(labels)} ${value}\n`;
    }
    return out;
  }
}

function labelKey(labels: Labels): string {
  return Object.keys(labels).sort().map((k) => `${k}=${labels[k]}`).join(",");
}

function renderLabels(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return "";
  const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
  return `{${keys.map((k) => `${k}="${esc(labels[k]!)}"`).join(",")}}`;
}
