/**
 * Registers the lct job kinds: `autoencoder-train` (latent stage), `image-classifier` (FID
 * features), `lct` (improved latent consistency training, Dao et al. ICLR 2025) and `lct-study`
 * (baseline iLCT vs the improved recipe, one Table-1-like FID table).
 */
import { registerPresets } from '../../jobs/presets.js';
import './autoencoder-job.js';
import './classifier.js';
import './lct.js';
import { lctPresets } from './presets.js';
import './study.js';

registerPresets(lctPresets);
