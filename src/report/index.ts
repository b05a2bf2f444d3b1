/**
 * The run report: `report.json` (schema in src/schema/report.ts) rendered to a self-contained
 * `report.html`. The Report step reads the run's results, builds a Report, validates it with
 * `parseReport`, and writes both files; `emo-dir report` only downloads the HTML.
 */
export { renderReportHtml, describeTarget, flopsBudget, targetColor, escapeHtml } from './html.ts';
export { renderPlot, axisLayout, niceTicks, niceStep, logTicks, formatCompact, escapeXml, PALETTE } from './svg.ts';
export type { AxisOptions, PlotOptions, Series, PlotPoint, MarkedPoint, VerticalLine, ScaleKind } from './svg.ts';
export { parseReport, reportSchema, REPORT_SCHEMA_VERSION } from '../schema/report.ts';
export type { Report, ReportTarget, ReportSubnetwork, ReportFrontPoint, ReportJointPoint, ReportLayer } from '../schema/report.ts';
