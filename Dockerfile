# One image, two roles: `npm run api` or `npm run worker` (see docker-compose.yml).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# Bundle the workflows once at build time instead of at every worker start.
RUN node --import tsx -e "Promise.all([import('@temporalio/worker'), import('/app/worker/create-worker.ts')]).then(async ([{ bundleWorkflowCode }, { workflowBundleOptions }]) => { const { code } = await bundleWorkflowCode(workflowBundleOptions()); (await import('node:fs')).writeFileSync('/app/workflow-bundle.js', code); })"
ENV PARLEY_WORKFLOW_BUNDLE=/app/workflow-bundle.js HOST=0.0.0.0
USER node
CMD ["npm", "run", "api"]
