/**
 * The runtime has one traffic observer slot; metrics and the access log both want it. This fans
 * records out to every observer added here (and sets the single one directly when there is only
 * one, so that it costs one call).
 */
import type { ExchangeRecord, TrafficObserver } from '../core/observer.js';
import type { Runtime } from '../runtime/runtime.js';

const observers = new WeakMap<Runtime, TrafficObserver[]>();

/** Adds an observer of the runtime's traffic; returns the function that removes it. */
export function addObserver(runtime: Runtime, observer: TrafficObserver): () => void {
  const list = observers.get(runtime) ?? [];
  list.push(observer);
  observers.set(runtime, list);
  install(runtime, list);
  return () => {
    const i = list.indexOf(observer);
    if (i < 0) return;
    list.splice(i, 1);
    install(runtime, list);
  };
}

function install(runtime: Runtime, list: TrafficObserver[]): void {
  if (list.length === 0) runtime.setObserver(null);
  else if (list.length === 1) runtime.setObserver(list[0]!);
  else {
    const all = [...list];
    runtime.setObserver({
      onExchange(record: ExchangeRecord): void {
        for (let i = 0; i < all.length; i++) all[i]!.onExchange(record);
      },
    });
  }
}
