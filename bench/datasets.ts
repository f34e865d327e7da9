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
