import { x } from './verto.js';
x();
