/** The shared real datasets (../shared/datasets, outside the project; a clone may not have them). */
import { join } from 'node:path';
import type { DataSpec } from '../src/training/data.js';
import { packagePath } from '../src/util/paths.js';

const SHARED = packagePath('..', 'shared', 'datasets');

export const sharedSets: { name: string; spec: DataSpec }[] = [
  { name: 'amazon-musical-instruments', spec: { file: join(SHARED, 'amazon-musical-instruments', 'interactions.tsv') } },
  {
    name: 'diginetica-sample',
    spec: {
      file: join(SHARED, 'diginetica-sample', 'sample_train-item-views.csv'),
      delimiter: ';',
      map: { USER_ID: 'session_id', ITEM_ID: 'item_id', TIMESTAMP: 'eventdate' },
    },
  },
];

const ML100K = process.env.STREAMREC_BENCH_ML100K ?? packagePath('.streamrec', 'datasets', 'ml-100k');

/**
 * Public sets outside ../shared, fetched by a script under bench/ (not committed). ml-100k:
 * `bash bench/fetch-ml100k.sh` (MovieLens 100K from RecBole's PyPI wheel; STREAMREC_BENCH_ML100K
 * names another folder), with item (GENRES, YEAR) and user (AGE, GENDER, OCCUPATION) metadata.
 */
export const externalSets: { name: string; spec: DataSpec; fetch: string }[] = [
  {
    name: 'ml-100k',
    fetch: 'bash bench/fetch-ml100k.sh',
    spec: { file: join(ML100K, 'interactions.tsv'), items: { file: join(ML100K, 'items.tsv') }, users: { file: join(ML100K, 'users.tsv') } },
  },
];
