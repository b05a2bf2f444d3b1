/**
 * cdk-nag 3 acknowledges findings through CDK's own `Validations.of(scope).acknowledge()`, one
 * exact finding id at a time (`AwsSolutions-IAM5[Resource::...]`); no prefix or regex matching.
 * These helpers keep each acknowledgement next to the resource it concerns, with its reason.
 */
import { Stack, Validations, type CfnElement } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

export function acknowledge(scope: IConstruct, rule: string, reason: string, findings?: readonly string[]): void {
  const ids = findings === undefined ? [rule] : findings.map((finding) => `${rule}[${finding}]`);
  Validations.of(scope).acknowledge(...ids.map((id) => ({ id, reason })));
}

/** How cdk-nag prints `Fn::GetAtt [<element>, Arn]` inside a finding: `<LogicalId.Arn>`. */
export function arnToken(element: CfnElement): string {
  return `<${Stack.of(element).resolve(element.logicalId) as string}.Arn>`;
}
