export {
  MAX_FILTER_EXPRESSION_LENGTH,
  MAX_FILTER_PARAMS,
  parseFilter,
  type FilterBoolean,
  type FilterCondition,
  type FilterDataset,
  type FilterOp,
  type FilterStage,
  type FilterTerm,
  type FilterUserCondition,
  type FilterValue,
  type ParsedFilter,
} from './parse.js';
export { bindFilter, parseFilterValues, type BoundFilter, type FilterInput, type FilterLiteral } from './evaluate.js';
