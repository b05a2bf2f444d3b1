/** A Powertools Logger that keeps its log items in memory instead of printing them. */
import { Logger } from '@aws-lambda-powertools/logger';
import type { LogItem } from '@aws-lambda-powertools/logger';

export class CapturingLogger extends Logger {
  readonly items: Record<string, unknown>[] = [];

  constructor() {
    super({ serviceName: 'emo-dir', logLevel: 'DEBUG' });
  }

  protected override printLog(_level: number, log: LogItem): void {
    log.prepareForPrint();
    this.items.push(JSON.parse(JSON.stringify(log.getAttributes())) as Record<string, unknown>);
  }

  messages(): string[] {
    return this.items.map((item) => String(item.message));
  }
}
