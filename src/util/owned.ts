/**
 * Resources that belong to an object (a model's weight tensors, kept for its kernels): made on first
 * use, one per owner, and disposed once the owner is garbage-collected.
 */
export function ownedResource<T extends { dispose(): void }>(): (owner: object, make: () => T) => T {
  const made = new WeakMap<object, T>();
  const release = new FinalizationRegistry<T>((r) => r.dispose());
  return (owner, make) => {
    let r = made.get(owner);
    if (!r) {
      r = make();
      made.set(owner, r);
      release.register(owner, r);
    }
    return r;
  };
}
