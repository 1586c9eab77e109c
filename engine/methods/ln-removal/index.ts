/** Registers the ln-removal job kinds (filled in by the method issue). */
export {};
