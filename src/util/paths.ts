import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The package's root folder, from src/util (tests) or dist/util (the built CLI) alike. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export const packagePath = (...parts: string[]): string => join(PACKAGE_ROOT, ...parts);
