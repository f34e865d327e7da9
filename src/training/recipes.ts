/** The recipes by name (`streamrec train --recipe`, solutions, training.recipe; `auto` chooses among them). */
import { AppError } from '../errors/index.js';
import { hrnn, hrnnColdstart, hrnnMetadata } from '../recipes/hrnn.js';
import { popularityCount } from '../recipes/popularity.js';
import { sims } from '../recipes/sims.js';
import type { AnyRecipe } from '../recipes/types.js';

export const RECIPES: Record<string, AnyRecipe> = {
  'popularity-count': popularityCount as unknown as AnyRecipe,
  sims: sims as unknown as AnyRecipe,
  hrnn: hrnn as unknown as AnyRecipe,
  'hrnn-metadata': hrnnMetadata as unknown as AnyRecipe,
  'hrnn-coldstart': hrnnColdstart as unknown as AnyRecipe,
};

/** The recipe of that name, or INVALID_ARGUMENT naming the known ones. */
export function recipeNamed(name: string): AnyRecipe {
  const r = RECIPES[name];
  if (!r) throw new AppError('INVALID_ARGUMENT', `unknown recipe ${JSON.stringify(name)}; known: ${Object.keys(RECIPES).join(', ')}`, { field: 'recipe' });
  return r;
}
