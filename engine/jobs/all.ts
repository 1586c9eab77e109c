/** Registers every job kind. Import this once wherever jobs run (CLI, engine process, tests). */
import '../train/lm-pretrain.js';
import '../methods/lns/index.js';
import '../methods/ln-removal/index.js';
import '../methods/lct/index.js';
import '../methods/ptq/index.js';
import './sweep.js';
