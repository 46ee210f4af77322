/**
 * @file Entry point of the browser client (loaded by index.html as a module).
 */

import {App} from './app.js';
import {View} from './view.js';

/** The running page (one per tab). */
export const app = new App(new View());
app.init();
