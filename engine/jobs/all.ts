/** Registers every job kind. Import this once wherever jobs run (CLI, engine process, tests). */
import '../train/lm-pretrain.js';
