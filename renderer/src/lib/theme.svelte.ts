/** Light/dark theme: follows the system until the user picks one (kept in localStorage). */
type Theme = 'light' | 'dark';

class ThemeState {
  current = $state<Theme>('light');
  constructor() {
    let saved: string | null = null;
    try {
      saved = localStorage.getItem('normlab-theme');
    } catch {
      /* storage off */
    }
    this.current = saved === 'dark' || saved === 'light' ? saved : matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
    this.apply();
  }
  toggle(): void {
    this.current = this.current === 'dark' ? 'light' : 'dark';
    try {
      localStorage.setItem('normlab-theme', this.current);
    } catch {
      /* storage off */
    }
    this.apply();
  }
  private apply(): void {
    document.documentElement.dataset.theme = this.current;
  }
}

export const theme = new ThemeState();
