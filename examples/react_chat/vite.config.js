import {defineConfig} from "vite";
import react from "@vitejs/plugin-react";

// Served by the FastAPI example at /app (examples/fastapi_llm/main.py); `npm run dev` proxies
// the API to it (uvicorn on :8000).
export default defineConfig({
  base: "/app/",
  plugins: [react()],
  server: {
    proxy: {"/api": "http://127.0.0.1:8000", "/runs": "http://127.0.0.1:8000"},
  },
});
