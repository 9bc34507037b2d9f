/** Compute resources of a container, checked the way the API server would. */

/** CPU and memory quantities, in Kubernetes notation (`250m`, `1`, `256Mi`, `1Gi`). */
export interface ResourceQuantities {
  /** CPU, e.g. `250m` or `1`. */
  readonly cpu: string;
  /** Memory, e.g. `256Mi` or `1Gi`. */
  readonly memory: string;
}

/** Requests and limits of a container. */
export interface ContainerResources {
  /** What the scheduler reserves. */
  readonly requests: ResourceQuantities;
  /** The ceiling: memory above it is OOM-killed, CPU above it is throttled. */
  readonly limits: ResourceQuantities;
}

const CPU = /^(\d+(\.\d+)?)(m?)$/;
const MEMORY = /^(\d+(\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/;
const MEMORY_UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
};

/** CPU quantity in cores; throws naming `prop` when it is not a valid, positive CPU quantity. */
export function parseCpu(value: string, prop: string): number {
  const m = typeof value === 'string' ? CPU.exec(value) : null;
  const cores = m ? Number(m[1]) / (m[3] === 'm' ? 1000 : 1) : NaN;
  if (!m || !(cores > 0)) {
    throw new Error(`'${prop}' must be a positive CPU quantity such as "250m" or "1", got ${JSON.stringify(value)}`);
  }
  return cores;
}

/** Memory quantity in bytes; throws naming `prop` when it is not a valid, positive memory quantity. */
export function parseMemory(value: string, prop: string): number {
  const m = typeof value === 'string' ? MEMORY.exec(value) : null;
  const bytes = m ? Number(m[1]) * MEMORY_UNITS[m[3] ?? '']! : NaN;
  if (!m || !(bytes > 0)) {
    throw new Error(`'${prop}' must be a positive memory quantity such as "256Mi" or "1Gi", got ${JSON.stringify(value)}`);
  }
  return bytes;
}

/**
 * Checks requests and limits: both present, valid quantities, requests not above limits, and
 * at least 32Mi of memory (less cannot start a Node.js process). `prop` names the prop in errors.
 */
export function validateResources(resources: ContainerResources, prop: string): void {
  if (!resources || !resources.requests || !resources.limits) {
    throw new Error(`'${prop}' must have both 'requests' and 'limits' ({ cpu, memory } each)`);
  }
  const reqCpu = parseCpu(resources.requests.cpu, `${prop}.requests.cpu`);
  const limCpu = parseCpu(resources.limits.cpu, `${prop}.limits.cpu`);
  const reqMem = parseMemory(resources.requests.memory, `${prop}.requests.memory`);
  const limMem = parseMemory(resources.limits.memory, `${prop}.limits.memory`);
  if (reqCpu > limCpu) {
    throw new Error(`'${prop}.requests.cpu' (${resources.requests.cpu}) must be less than or equal to '${prop}.limits.cpu' (${resources.limits.cpu})`);
  }
  if (reqMem > limMem) {
    throw new Error(
      `'${prop}.requests.memory' (${resources.requests.memory}) must be less than or equal to '${prop}.limits.memory' (${resources.limits.memory})`,
    );
  }
  if (reqMem < 32 * 2 ** 20) {
    throw new Error(`'${prop}.requests.memory' must be at least 32Mi, got ${JSON.stringify(resources.requests.memory)}`);
  }
}
