/**
 * The layering rules of src/, checked by `npm run lint:deps` (part of `npm test`, so of .ci/run).
 * Type-only imports count too: a cycle through a type is still a cycle a reader has to untangle.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import cycles: each module can be read (and moved) after the ones it imports.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'model-is-pure-math',
      severity: 'error',
      comment: 'src/model is tensors in, tensors out: no Kafka, state, stream processing, serving or HTTP.',
      from: { path: '^src/model/' },
      to: { path: '^src/(kafka|state|stream|serving|api)/' },
    },
    {
      name: 'recipes-know-no-transport',
      severity: 'error',
      comment: 'Recipes train and score; they know neither HTTP nor Kafka.',
      from: { path: '^src/recipes/' },
      to: { path: '^src/(api|kafka)/' },
    },
    {
      name: 'state-below-stream',
      severity: 'error',
      comment: 'The state store and its codecs sit below the processor, serving and the API.',
      from: { path: '^src/state/' },
      to: { path: '^src/(stream|serving|api)/' },
    },
    {
      name: 'serde-below-stream',
      severity: 'error',
      comment: 'Avro and validation are used by the stream, never the other way round.',
      from: { path: '^src/serde/' },
      to: { path: '^src/stream/' },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      comment: 'Every import resolves (a moved file leaves no dangling import).',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js'] },
  },
};
